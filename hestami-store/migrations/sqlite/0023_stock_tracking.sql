-- Serial and lot tracking (issue 16): the same tables as the PostgreSQL migration.

CREATE TABLE stock_items (
    organization_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    tracking TEXT NOT NULL CHECK (tracking IN ('none', 'serial', 'lot')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, item_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);

CREATE TABLE stock_serials (
    organization_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    serial TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_stock', 'in_transit', 'used', 'removed')),
    location_id BLOB,
    job_id BLOB,
    property_id BLOB,
    transfer_id BLOB,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, item_id, serial),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, property_id) REFERENCES properties (organization_id, id)
);
CREATE INDEX stock_serials_by_job ON stock_serials (organization_id, job_id) WHERE job_id IS NOT NULL;
CREATE INDEX stock_serials_by_property ON stock_serials (organization_id, property_id)
    WHERE property_id IS NOT NULL;

ALTER TABLE stock_ledger ADD COLUMN serials TEXT;
ALTER TABLE stock_ledger ADD COLUMN lot TEXT;
ALTER TABLE stock_transfers ADD COLUMN serials TEXT;
ALTER TABLE stock_transfers ADD COLUMN lot TEXT;

-- Why a purchase order was called off.
ALTER TABLE purchase_orders ADD COLUMN cancel_reason TEXT;
