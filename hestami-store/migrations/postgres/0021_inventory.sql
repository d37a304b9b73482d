-- Inventory (issue 16): where stock is kept, the append-only stock ledger, the running balance
-- per item and location it keeps, and the moving average cost per item. Every table is a tenant
-- table; quantities and money are decimal text, never floats.

CREATE TABLE stock_locations (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('warehouse', 'truck')),
    name text NOT NULL,
    technician_id uuid,
    allow_negative boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
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
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    item_id uuid NOT NULL,
    location_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('receipt', 'transfer_out', 'transfer_in', 'consumption',
                                       'return', 'adjustment')),
    delta text NOT NULL,
    unit_cost text NOT NULL,
    on_hand_after text NOT NULL,
    job_id uuid,
    counterpart_id uuid,
    reason text,
    actor_user_id uuid,
    at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX stock_ledger_by_item ON stock_ledger (organization_id, item_id, location_id, id);
CREATE INDEX stock_ledger_by_job ON stock_ledger (organization_id, job_id) WHERE job_id IS NOT NULL;

-- The running balance the ledger sums to, updated in the movement's transaction.
CREATE TABLE stock_balances (
    organization_id uuid NOT NULL,
    item_id uuid NOT NULL,
    location_id uuid NOT NULL,
    on_hand text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, item_id, location_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id)
);

-- The moving average cost of each stocked item, across the organization's locations.
CREATE TABLE stock_costs (
    organization_id uuid NOT NULL,
    item_id uuid NOT NULL,
    on_hand text NOT NULL,
    average text NOT NULL,
    PRIMARY KEY (organization_id, item_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stock_locations', 'stock_ledger', 'stock_balances', 'stock_costs']
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
