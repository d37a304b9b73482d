-- Foundation: the directory (organizations, users, memberships, tokens), the change feed, the
-- first aggregates (customers, properties, technicians, jobs) and the workflow engine.
--
-- The SQLite twin of the PostgreSQL migration: the same tables, keys and constraints; no
-- row-level security (the tenant handle adds the organization to every statement instead).

CREATE TABLE organizations (
    id BLOB PRIMARY KEY,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('contractor', 'hoa')),
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    currency TEXT NOT NULL,
    sla_emergency_minutes INTEGER NOT NULL,
    sla_urgent_minutes INTEGER NOT NULL,
    sla_routine_minutes INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The directory: who may sign in and where. Read before an organization is chosen (a token
-- names a user, not an organization), so these are not tenant tables; they hold no tenant data
-- beyond which users belong to which organization ids.
CREATE TABLE users (
    id BLOB PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    user_id BLOB NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'dispatcher', 'office', 'technician', 'viewer')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE api_tokens (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

-- The change feed (DESIGN §4.5). A sequence number is taken by incrementing the
-- organization's counter row, which locks it until commit: one organization's writers are
-- serialized at that point, so no reader paging by cursor can see seq N+1 before N commits.
CREATE TABLE feed_counters (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    last_seq INTEGER NOT NULL
);

CREATE TABLE change_feed (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    seq INTEGER NOT NULL,
    entity_kind TEXT NOT NULL,
    entity_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('created', 'updated', 'deleted', 'transitioned')),
    actor_user_id BLOB,
    workflow_id BLOB,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, seq)
);

CREATE TABLE customers (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE properties (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    customer_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    line1 TEXT NOT NULL,
    line2 TEXT,
    city TEXT NOT NULL,
    region TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    country TEXT NOT NULL,
    lat REAL,
    lon REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, customer_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);

CREATE TABLE technicians (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    trades TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, email)
);

CREATE TABLE jobs (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    held_from TEXT,
    customer_id BLOB NOT NULL,
    property_id BLOB NOT NULL,
    trade TEXT NOT NULL,
    priority TEXT NOT NULL,
    summary TEXT NOT NULL,
    description TEXT,
    window_start TEXT,
    window_end TEXT,
    technician_id BLOB,
    sla_deadline TEXT NOT NULL,
    visit_started_at TEXT,
    completed_at TEXT,
    callback_of BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, customer_id, property_id)
        REFERENCES properties (organization_id, customer_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id),
    FOREIGN KEY (organization_id, callback_of) REFERENCES jobs (organization_id, id)
);
CREATE INDEX jobs_by_status ON jobs (organization_id, status, id);
CREATE INDEX jobs_by_technician ON jobs (organization_id, technician_id, id);

CREATE TABLE job_events (
    organization_id BLOB NOT NULL,
    job_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    change TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor_user_id BLOB,
    reason TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, job_id, version),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);

-- The durable workflow engine (DESIGN §4.3).
CREATE TABLE workflows (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    name TEXT NOT NULL,
    procedure TEXT NOT NULL,
    idempotency_key BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    output TEXT,
    error TEXT,
    trace_id TEXT,
    actor_user_id BLOB,
    executor_id TEXT,
    attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, procedure, idempotency_key)
);
CREATE INDEX workflows_by_status ON workflows (organization_id, status, id);

CREATE TABLE workflow_steps (
    organization_id BLOB NOT NULL,
    workflow_id BLOB NOT NULL,
    step_index INTEGER NOT NULL,
    name TEXT NOT NULL,
    output TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, workflow_id, step_index),
    FOREIGN KEY (organization_id, workflow_id) REFERENCES workflows (organization_id, id)
);

-- The engine's claim queue: one row per pending workflow, with its lease. Recovery must find
-- pending work across organizations before it can set one, so this is not a tenant table; it
-- holds ids and leases only, never a workflow's input or output.
CREATE TABLE workflow_queue (
    workflow_id BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL,
    name TEXT NOT NULL,
    executor_id TEXT NOT NULL,
    lease_expires_at TEXT NOT NULL
);
CREATE INDEX workflow_queue_by_lease ON workflow_queue (lease_expires_at);

