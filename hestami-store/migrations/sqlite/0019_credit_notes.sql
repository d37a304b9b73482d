-- Credit notes (issue 15): their own gapless per-organization number sequence, and one row per
-- note. See the PostgreSQL migration.
CREATE TABLE credit_note_sequences (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    last_value INTEGER NOT NULL
);

CREATE TABLE credit_notes (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    invoice_id BLOB NOT NULL,
    number INTEGER NOT NULL,
    total TEXT NOT NULL,
    issue_date TEXT NOT NULL,
    refund_id BLOB,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, number),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id)
);
CREATE INDEX credit_notes_invoice ON credit_notes (organization_id, invoice_id);

ALTER TABLE payments ADD COLUMN credit TEXT;
