-- Maintenance agreements (issue 17): plans (templates), agreements on them, the visits their
-- schedules generated as jobs, and the invoices of their billing periods. An agreement's period
-- invoice has no job, so an invoice's job becomes optional.
--
-- SQLite cannot drop a NOT NULL constraint: `invoices` is rebuilt the documented way (a new
-- table, the rows copied, the old one dropped, the new one renamed). Migrations run on a
-- connection without foreign key enforcement, which the rebuild needs (the other tables that
-- refer to `invoices` keep referring to it by name), and the migrator checks every foreign key
-- once they are done.

CREATE TABLE invoices_rebuilt (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'issued', 'paid', 'void')),
    job_id BLOB,
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
INSERT INTO invoices_rebuilt (organization_id, id, version, status, job_id, customer_id, number,
    issue_date, due_date, total, balance, overdue_notified_on, body, created_at, updated_at)
    SELECT organization_id, id, version, status, job_id, customer_id, number, issue_date, due_date,
           total, balance, overdue_notified_on, body, created_at, updated_at FROM invoices;
DROP TABLE invoices;
ALTER TABLE invoices_rebuilt RENAME TO invoices;
CREATE INDEX invoices_job ON invoices (organization_id, job_id);
CREATE INDEX invoices_open ON invoices (organization_id, status, due_date);

CREATE TABLE maintenance_plans (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    active INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, name)
);

CREATE TABLE maintenance_agreements (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    plan_id BLOB NOT NULL,
    customer_id BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'active', 'suspended', 'expired', 'cancelled')),
    start_date TEXT NOT NULL,
    term_end TEXT NOT NULL,
    next_attention TEXT,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, plan_id) REFERENCES maintenance_plans (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);
CREATE INDEX maintenance_agreements_by_status ON maintenance_agreements (organization_id, status);
CREATE INDEX maintenance_agreements_by_customer ON maintenance_agreements (organization_id, customer_id);

CREATE TABLE maintenance_visits (
    organization_id BLOB NOT NULL,
    agreement_id BLOB NOT NULL,
    slot INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    occurrence INTEGER NOT NULL,
    property_id BLOB NOT NULL,
    due_on TEXT NOT NULL,
    job_id BLOB NOT NULL,
    generated_on TEXT NOT NULL,
    late INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, agreement_id, slot, revision, occurrence, property_id),
    FOREIGN KEY (organization_id, agreement_id) REFERENCES maintenance_agreements (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, property_id) REFERENCES properties (organization_id, id)
);
CREATE INDEX maintenance_visits_by_job ON maintenance_visits (organization_id, job_id);

CREATE TABLE agreement_invoices (
    organization_id BLOB NOT NULL,
    agreement_id BLOB NOT NULL,
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    invoice_id BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, agreement_id, period_start),
    UNIQUE (organization_id, invoice_id),
    FOREIGN KEY (organization_id, agreement_id) REFERENCES maintenance_agreements (organization_id, id),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id)
);
