-- Inventory and procurement, second part (issue 16): the same tables as the PostgreSQL
-- migration (reservations, transfers in transit, suppliers, reorder points, purchase orders,
-- supplier bills); decimals are text.

-- The ledger also records holds for jobs and names its transfer or purchase order. SQLite
-- cannot change a CHECK constraint: the table is rebuilt with the new kinds.
CREATE TABLE stock_ledger_next (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    location_id BLOB NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('receipt', 'transfer_out', 'transfer_in', 'consumption',
                                       'return', 'adjustment', 'reservation', 'release')),
    delta TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    on_hand_after TEXT NOT NULL,
    job_id BLOB,
    counterpart_id BLOB,
    reason TEXT,
    actor_user_id BLOB,
    at TEXT NOT NULL,
    reserved_delta TEXT NOT NULL DEFAULT '0',
    transfer_id BLOB,
    purchase_order_id BLOB,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
INSERT INTO stock_ledger_next (organization_id, id, item_id, location_id, kind, delta, unit_cost,
    on_hand_after, job_id, counterpart_id, reason, actor_user_id, at)
    SELECT organization_id, id, item_id, location_id, kind, delta, unit_cost, on_hand_after, job_id,
           counterpart_id, reason, actor_user_id, at FROM stock_ledger;
DROP TABLE stock_ledger;
ALTER TABLE stock_ledger_next RENAME TO stock_ledger;
CREATE INDEX stock_ledger_by_item ON stock_ledger (organization_id, item_id, location_id, id);
CREATE INDEX stock_ledger_by_job ON stock_ledger (organization_id, job_id) WHERE job_id IS NOT NULL;
ALTER TABLE stock_balances ADD COLUMN reserved TEXT NOT NULL DEFAULT '0';


-- What each job holds of an item at a location.
CREATE TABLE stock_reservations (
    organization_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    location_id BLOB NOT NULL,
    job_id BLOB NOT NULL,
    quantity TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, item_id, location_id, job_id),
    FOREIGN KEY (organization_id, item_id, location_id)
        REFERENCES stock_balances (organization_id, item_id, location_id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX stock_reservations_by_job ON stock_reservations (organization_id, job_id);

-- A transfer between two locations: drafted (by the reorder pass), in transit (left its
-- origin), received, or cancelled. `reorder_date` is the day's pass that drafted it.
CREATE TABLE stock_transfers (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    item_id BLOB NOT NULL,
    from_location_id BLOB NOT NULL,
    to_location_id BLOB NOT NULL,
    quantity TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'in_transit', 'received', 'cancelled')),
    reorder_date TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, from_location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, to_location_id) REFERENCES stock_locations (organization_id, id)
);
CREATE UNIQUE INDEX stock_transfers_reorder ON stock_transfers
    (organization_id, item_id, to_location_id, reorder_date) WHERE reorder_date IS NOT NULL;

CREATE TABLE suppliers (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    contact_name TEXT,
    email TEXT,
    phone TEXT,
    payment_terms_days INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id)
);

-- What a supplier sells of the pricebook's materials; at most one preferred supplier per item.
CREATE TABLE supplier_items (
    organization_id BLOB NOT NULL,
    supplier_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    part_number TEXT,
    pack_size TEXT,
    last_price TEXT,
    lead_time_days INTEGER,
    preferred INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, supplier_id, item_id),
    FOREIGN KEY (organization_id, supplier_id) REFERENCES suppliers (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);
CREATE UNIQUE INDEX supplier_items_preferred ON supplier_items (organization_id, item_id) WHERE preferred = 1;

-- Keep between `min` and `max` of an item at a location; a truck's point may name the
-- warehouse that replenishes it (`source_location_id`), otherwise the preferred supplier does.
CREATE TABLE reorder_points (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    item_id BLOB NOT NULL,
    location_id BLOB NOT NULL,
    min TEXT NOT NULL,
    max TEXT NOT NULL,
    source_location_id BLOB,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, item_id, location_id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id),
    FOREIGN KEY (organization_id, location_id) REFERENCES stock_locations (organization_id, id),
    FOREIGN KEY (organization_id, source_location_id) REFERENCES stock_locations (organization_id, id)
);

CREATE TABLE purchase_order_sequences (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    last_value INTEGER NOT NULL
);

-- A purchase order to a supplier, delivered to a location; for a job (a special order) its
-- receipts are reserved for that job. `reorder_date` is the day's pass that drafted it: one
-- per supplier and location per day.
CREATE TABLE purchase_orders (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    number TEXT NOT NULL,
    supplier_id BLOB NOT NULL,
    location_id BLOB NOT NULL,
    job_id BLOB,
    status TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'partially_received', 'received',
                                           'closed', 'cancelled')),
    reorder_date TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    submitted_at TEXT,
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
    organization_id BLOB NOT NULL,
    purchase_order_id BLOB NOT NULL,
    line INTEGER NOT NULL,
    item_id BLOB NOT NULL,
    quantity TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    received TEXT NOT NULL,
    billed TEXT NOT NULL,
    PRIMARY KEY (organization_id, purchase_order_id, line),
    FOREIGN KEY (organization_id, purchase_order_id) REFERENCES purchase_orders (organization_id, id),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);

-- A supplier's bill against a purchase order, with its three-way match.
CREATE TABLE supplier_bills (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    purchase_order_id BLOB NOT NULL,
    number TEXT NOT NULL,
    lines TEXT NOT NULL,
    total TEXT NOT NULL,
    mismatches TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, purchase_order_id, number),
    FOREIGN KEY (organization_id, purchase_order_id) REFERENCES purchase_orders (organization_id, id)
);

