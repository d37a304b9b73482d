-- SQLite twin of the PostgreSQL migration (no RLS).
-- Onboarding and compliance, the rest of the workforce, eligibility inputs, the outbox and
-- durable timers. Same rules as 0001: composite keys and foreign keys, RLS on every tenant table.

CREATE TABLE contractor_profiles (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    version INTEGER NOT NULL,
    legal_name TEXT,
    trade_names TEXT NOT NULL,
    tax_id TEXT,
    contact_email TEXT,
    contact_phone TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE licenses (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    trade TEXT NOT NULL,
    country TEXT NOT NULL,
    region TEXT,
    locality TEXT,
    number TEXT NOT NULL,
    issued_on TEXT,
    expires_on TEXT NOT NULL,
    document_ref TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'verified', 'rejected')),
    verified_by BLOB,
    verified_at TEXT,
    lapsed_at TEXT,
    removed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE insurance_policies (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    carrier TEXT NOT NULL,
    policy_number TEXT NOT NULL,
    per_occurrence_limit TEXT NOT NULL,
    aggregate_limit TEXT NOT NULL,
    effective_on TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    certificate_ref TEXT,
    lapsed_at TEXT,
    removed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id)
);

-- Requirements are data: one row per organization once it changes the shipped default.
CREATE TABLE compliance_requirements (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    version INTEGER NOT NULL,
    rules TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Service areas are replaced as a set; every set is kept (the highest version is current).
-- technician_id is NULL for the organization's own areas.
CREATE TABLE service_area_sets (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    technician_id BLOB,
    version INTEGER NOT NULL,
    areas TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
CREATE INDEX service_area_sets_current ON service_area_sets (organization_id, technician_id, version);

ALTER TABLE technicians ADD COLUMN skills TEXT NOT NULL DEFAULT '[]';
ALTER TABLE technicians ADD COLUMN home_lat REAL;
ALTER TABLE technicians ADD COLUMN home_lon REAL;
ALTER TABLE technicians ADD COLUMN daily_capacity INTEGER NOT NULL DEFAULT 8;

CREATE TABLE technician_certifications (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    issuer TEXT NOT NULL,
    number TEXT,
    expires_on TEXT,
    trades TEXT NOT NULL,
    lapsed_at TEXT,
    removed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

CREATE TABLE technician_shifts (
    organization_id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    effective_from TEXT NOT NULL,
    spans TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, technician_id, effective_from),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

CREATE TABLE technician_time_off (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    reason TEXT,
    removed_at TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

ALTER TABLE jobs ADD COLUMN min_skill_level INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN required_certifications TEXT NOT NULL DEFAULT '[]';

-- Messages to the outside world (reminders, later webhooks), written in the transaction of the
-- step that decided to send them and delivered after commit.
CREATE TABLE outbox (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    workflow_id BLOB,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (organization_id, id)
);

-- Durable timers: when each organization's scheduled workflows are next due. Like the claim
-- queue, the scheduler must find due timers across organizations before it can set one, so
-- this holds ids and times only and is not a tenant table.
CREATE TABLE timers (
    organization_id BLOB NOT NULL,
    name TEXT NOT NULL,
    due_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, name)
);
CREATE INDEX timers_due ON timers (due_at);

