-- Inventory and procurement, second part (issue 16): reservations for jobs, transfers that
-- spend time in transit, suppliers and what they sell, reorder points, purchase orders and
-- their receipts, and supplier bills. Every table is a tenant table; quantities and money are
-- decimal text, never floats.

-- The ledger also records holds for jobs (`reserved_delta`, with `delta` 0), and names the
-- transfer or purchase order a row belongs to.
ALTER TABLE stock_ledger DROP CONSTRAINT stock_ledger_kind_check;
ALTER TABLE stock_ledger ADD CONSTRAINT stock_ledger_kind_check
    CHECK (kind IN ('receipt', 'transfer_out', 'transfer_in', 'consumption', 'return', 'adjustment',
                    'reservation', 'release'));
ALTER TABLE stock_ledger ADD COLUMN reserved_delta text NOT NULL DEFAULT '0';
ALTER TABLE stock_ledger ADD COLUMN transfer_id uuid;
ALTER TABLE stock_ledger ADD COLUMN purchase_order_id uuid;
ALTER TABLE stock_balances ADD COLUMN reserved text NOT NULL DEFAULT '0';

-- What each job holds of an item at a location.
CREATE TABLE stock_reservations (
    organization_id uuid NOT NULL,
    item_id uuid NOT NULL,
    location_id uuid NOT NULL,
    job_id uuid NOT NULL,
    quantity text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, item_id, location_id, job_id),
    FOREIGN KEY (organization_id, item_id, location_id)
        REFERENCES stock_balances (organization_id, item_id, location_id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX stock_reservations_by_job ON stock_reservations (organization_id, job_id);

-- A transfer between two locations: drafted (by the reorder pass), in transit (left its
-- origin), received, or cancelled. `reorder_date` is the day's pass that drafted it.
CREATE TABLE stock_transfers (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL,
    item_id uuid NOT NULL,
    from_location_id uuid NOT NULL,
    to_location_id uuid NOT NULL,
    quantity text NOT NULL,
    status text NOT NULL CHECK (status IN ('draft', 'in_transit', 'received', 'cancelled')),
    reorder_date date,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, from_location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, to_location_id) REFERENCES stock_locations (organization_id, id)
);
CREATE UNIQUE INDEX stock_transfers_reorder ON stock_transfers
    (organization_id, item_id, to_location_id, reorder_date) WHERE reorder_date IS NOT NULL;

CREATE TABLE suppliers (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    contact_name text,
    email text,
    phone text,
    payment_terms_days bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id)
);

-- What a supplier sells of the pricebook's materials; at most one preferred supplier per item.
CREATE TABLE supplier_items (
    organization_id uuid NOT NULL,
    supplier_id uuid NOT NULL,
    item_id uuid NOT NULL,
    part_number text,
    pack_size text,
    last_price text,
    lead_time_days bigint,
    preferred boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, supplier_id, item_id),
    FOREIGN KEY (organization_id, supplier_id) REFERENCES suppliers (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);
CREATE UNIQUE INDEX supplier_items_preferred ON supplier_items (organization_id, item_id) WHERE preferred;

-- Keep between `min` and `max` of an item at a location; a truck's point may name the
-- warehouse that replenishes it (`source_location_id`), otherwise the preferred supplier does.
CREATE TABLE reorder_points (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL,
    item_id uuid NOT NULL,
    location_id uuid NOT NULL,
    min text NOT NULL,
    max text NOT NULL,
    source_location_id uuid,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, item_id, location_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, source_location_id) REFERENCES stock_locations (organization_id, id)
);

CREATE TABLE purchase_order_sequences (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    last_value bigint NOT NULL
);

-- A purchase order to a supplier, delivered to a location; for a job (a special order) its
-- receipts are reserved for that job. `reorder_date` is the day's pass that drafted it: one
-- per supplier and location per day.
CREATE TABLE purchase_orders (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL,
    number text NOT NULL,
    supplier_id uuid NOT NULL,
    location_id uuid NOT NULL,
    job_id uuid,
    status text NOT NULL CHECK (status IN ('draft', 'submitted', 'partially_received', 'received',
                                           'closed', 'cancelled')),
    reorder_date date,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    submitted_at timestamptz,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, number),
    FOREIGN KEY (organization_id, supplier_id) REFERENCES suppliers (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE UNIQUE INDEX purchase_orders_reorder ON purchase_orders
    (organization_id, supplier_id, location_id, reorder_date) WHERE reorder_date IS NOT NULL;
CREATE INDEX purchase_orders_by_supplier ON purchase_orders (organization_id, supplier_id, id);

CREATE TABLE purchase_order_lines (
    organization_id uuid NOT NULL,
    purchase_order_id uuid NOT NULL,
    line bigint NOT NULL,
    item_id uuid NOT NULL,
    quantity text NOT NULL,
    unit_cost text NOT NULL,
    received text NOT NULL,
    billed text NOT NULL,
    PRIMARY KEY (organization_id, purchase_order_id, line),
    FOREIGN KEY (organization_id, purchase_order_id) REFERENCES purchase_orders (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);

-- A supplier's bill against a purchase order, with its three-way match.
CREATE TABLE supplier_bills (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    purchase_order_id uuid NOT NULL,
    number text NOT NULL,
    lines text NOT NULL,
    total text NOT NULL,
    mismatches text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, purchase_order_id, number),
    FOREIGN KEY (organization_id, purchase_order_id) REFERENCES purchase_orders (organization_id, id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stock_reservations', 'stock_transfers', 'suppliers', 'supplier_items',
                             'reorder_points', 'purchase_order_sequences', 'purchase_orders',
                             'purchase_order_lines', 'supplier_bills']
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
