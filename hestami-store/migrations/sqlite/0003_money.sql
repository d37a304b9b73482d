-- SQLite twin of the PostgreSQL migration (no RLS).
-- The money path: pricebook, estimates, invoices and payments (issue 4). Same rules as 0001 and
-- 0002: composite keys and foreign keys carrying organization_id, RLS on every tenant table.
-- Priced content (items, estimates, invoices) is kept as the domain's JSON in `body`, with the
-- columns the queries filter on beside it; money is decimal text, never a float.

-- The current revision of each pricebook item. `lookup_key` is what an import matches rows on
-- (a material's SKU, otherwise the kind and the folded name; unique among live items); `search_text` is the folded name,
-- description, category and SKU.
CREATE TABLE pricebook_items (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    revision INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('service', 'material', 'labor', 'equipment')),
    name TEXT NOT NULL,
    category TEXT,
    sku TEXT,
    lookup_key TEXT NOT NULL,
    search_text TEXT NOT NULL,
    archived INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id)
);
-- Live items only: an archived item's SKU or name can be used by a new item.
CREATE UNIQUE INDEX pricebook_items_live_key ON pricebook_items (organization_id, lookup_key)
    WHERE archived = 0;

-- Every revision of every item, as it was: a priced line names (item, revision).
CREATE TABLE pricebook_item_revisions (
    organization_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, item_id, revision),
    FOREIGN KEY (organization_id, item_id) REFERENCES pricebook_items (organization_id, id)
);

-- The organization's markup tiers and tax rates.
CREATE TABLE pricing_settings (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    version INTEGER NOT NULL,
    markup_tiers TEXT NOT NULL,
    tax_rates TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The current revision of each estimate; earlier revisions are in estimate_revisions.
CREATE TABLE estimates (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'sent', 'approved', 'declined', 'expired')),
    job_id BLOB,
    customer_id BLOB NOT NULL,
    property_id BLOB NOT NULL,
    valid_until TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id),
    FOREIGN KEY (organization_id, customer_id, property_id)
        REFERENCES properties (organization_id, customer_id, id)
);
CREATE INDEX estimates_job ON estimates (organization_id, job_id);

CREATE TABLE estimate_revisions (
    organization_id BLOB NOT NULL,
    estimate_id BLOB NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (organization_id, estimate_id, revision),
    FOREIGN KEY (organization_id, estimate_id) REFERENCES estimates (organization_id, id)
);

CREATE TABLE estimate_events (
    organization_id BLOB NOT NULL,
    estimate_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, estimate_id, version),
    FOREIGN KEY (organization_id, estimate_id) REFERENCES estimates (organization_id, id)
);

-- The gapless invoice number sequence: one row per organization, incremented in the
-- transaction that issues the invoice, so a rolled-back issue gives its number back.
CREATE TABLE invoice_sequences (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    last_value INTEGER NOT NULL
);

CREATE TABLE invoices (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'issued', 'paid', 'void')),
    job_id BLOB NOT NULL,
    customer_id BLOB NOT NULL,
    number INTEGER,
    issue_date TEXT,
    due_date TEXT,
    total TEXT NOT NULL,
    balance TEXT NOT NULL,
    overdue_notified_on TEXT,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, number),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);
CREATE INDEX invoices_job ON invoices (organization_id, job_id);
CREATE INDEX invoices_open ON invoices (organization_id, status, due_date);

CREATE TABLE invoice_events (
    organization_id BLOB NOT NULL,
    invoice_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, invoice_id, version),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id)
);

-- Every payment and refund, with the provider's reference: the ledger the invoices' balances
-- are made of, and how a refund finds its payment. A row is written `pending` before the
-- provider is asked (it reserves its amount against the balance, or against what is left of
-- the payment), then becomes `applied` or `declined`; money that moved but that the invoice
-- could not take is `returned` to the customer, or else `unapplied` (to reconcile, with an
-- outbox message).
CREATE TABLE payments (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    invoice_id BLOB NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    payment_id BLOB,
    state TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'declined', 'returned', 'unapplied')),
    amount TEXT NOT NULL,
    method TEXT NOT NULL,
    reference TEXT,
    provider TEXT NOT NULL,
    provider_ref TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id),
    FOREIGN KEY (organization_id, payment_id) REFERENCES payments (organization_id, id)
);
CREATE INDEX payments_invoice ON payments (organization_id, invoice_id);

-- Labour time and materials recorded on a job (what an invoice `from: actuals` prices).
CREATE TABLE job_actuals (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    job_id BLOB NOT NULL,
    line TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX job_actuals_job ON job_actuals (organization_id, job_id);

-- An approved estimate's option, handed to its job by estimate/v1/convertToJob.
CREATE TABLE job_planned_work (
    organization_id BLOB NOT NULL,
    job_id BLOB NOT NULL,
    estimate_id BLOB NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, job_id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, estimate_id) REFERENCES estimates (organization_id, id)
);
