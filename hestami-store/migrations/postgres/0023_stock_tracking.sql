-- Serial and lot tracking (issue 16): how each material's units are told apart, where each
-- serial-numbered unit is (a location, on its way, or installed on a job at a property), and
-- the serials and lot each ledger row and transfer moved.

CREATE TABLE stock_items (
    organization_id uuid NOT NULL,
    item_id uuid NOT NULL,
    version bigint NOT NULL,
    tracking text NOT NULL CHECK (tracking IN ('none', 'serial', 'lot')),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, item_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);

CREATE TABLE stock_serials (
    organization_id uuid NOT NULL,
    item_id uuid NOT NULL,
    serial text NOT NULL,
    status text NOT NULL CHECK (status IN ('in_stock', 'in_transit', 'used', 'removed')),
    location_id uuid,
    job_id uuid,
    property_id uuid,
    transfer_id uuid,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, item_id, serial),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, property_id) REFERENCES properties (organization_id, id)
);
CREATE INDEX stock_serials_by_job ON stock_serials (organization_id, job_id) WHERE job_id IS NOT NULL;
CREATE INDEX stock_serials_by_property ON stock_serials (organization_id, property_id)
    WHERE property_id IS NOT NULL;

-- JSON arrays of serial numbers, and the lot.
ALTER TABLE stock_ledger ADD COLUMN serials text;
ALTER TABLE stock_ledger ADD COLUMN lot text;
ALTER TABLE stock_transfers ADD COLUMN serials text;
ALTER TABLE stock_transfers ADD COLUMN lot text;

-- Why a purchase order was called off.
ALTER TABLE purchase_orders ADD COLUMN cancel_reason text;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stock_items', 'stock_serials']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;
