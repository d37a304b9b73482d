-- Inventory (issue 16): the same tables as the PostgreSQL migration (where stock is kept, the
-- stock ledger, the running balances and the moving average cost); decimals are text.

CREATE TABLE stock_locations (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('warehouse', 'truck')),
    name TEXT NOT NULL,
    technician_id BLOB,
    allow_negative INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
-- One truck per technician.
CREATE UNIQUE INDEX stock_locations_truck ON stock_locations (organization_id, technician_id)
    WHERE technician_id IS NOT NULL;

-- Every movement, never updated: `delta` is signed (in positive, out negative); `unit_cost` is
-- the receipt's cost, or the average cost a consumption, transfer or adjustment took the stock
-- at.
CREATE TABLE stock_ledger (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    location_id BLOB NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('receipt', 'transfer_out', 'transfer_in', 'consumption',
                                       'return', 'adjustment')),
    delta TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    on_hand_after TEXT NOT NULL,
    job_id BLOB,
    counterpart_id BLOB,
    reason TEXT,
    actor_user_id BLOB,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX stock_ledger_by_item ON stock_ledger (organization_id, item_id, location_id, id);
CREATE INDEX stock_ledger_by_job ON stock_ledger (organization_id, job_id) WHERE job_id IS NOT NULL;

-- The running balance the ledger sums to, updated in the movement's transaction.
CREATE TABLE stock_balances (
    organization_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    location_id BLOB NOT NULL,
    on_hand TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, item_id, location_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id)
);

-- The moving average cost of each stocked item, across the organization's locations.
CREATE TABLE stock_costs (
    organization_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    on_hand TEXT NOT NULL,
    average TEXT NOT NULL,
    PRIMARY KEY (organization_id, item_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);
