-- Foundation: the directory (organizations, users, memberships, tokens), the change feed, the
-- first aggregates (customers, properties, technicians, jobs) and the workflow engine.
--
-- Every tenant table has organization_id, a primary key (organization_id, id) and composite
-- foreign keys, so no row can point at another organization's row. Row-level security is
-- enabled and forced on every tenant table at the end of this file.

CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    version bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('contractor', 'hoa')),
    name text NOT NULL,
    time_zone text NOT NULL,
    currency text NOT NULL,
    sla_emergency_minutes bigint NOT NULL,
    sla_urgent_minutes bigint NOT NULL,
    sla_routine_minutes bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The directory: who may sign in and where. Read before an organization is chosen (a token
-- names a user, not an organization), so these are not tenant tables; they hold no tenant data
-- beyond which users belong to which organization ids.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text,
    created_at timestamptz NOT NULL
);

CREATE TABLE memberships (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id uuid NOT NULL REFERENCES users (id),
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'dispatcher', 'office', 'technician', 'viewer')),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE api_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    token_hash text NOT NULL UNIQUE,
    label text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

-- The change feed (DESIGN §4.5). A sequence number is taken by incrementing the
-- organization's counter row, which locks it until commit: one organization's writers are
-- serialized at that point, so no reader paging by cursor can see seq N+1 before N commits.
CREATE TABLE feed_counters (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    last_seq bigint NOT NULL
);

CREATE TABLE change_feed (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    seq bigint NOT NULL,
    entity_kind text NOT NULL,
    entity_id uuid NOT NULL,
    version bigint NOT NULL,
    operation text NOT NULL CHECK (operation IN ('created', 'updated', 'deleted', 'transitioned')),
    actor_user_id uuid,
    workflow_id uuid,
    at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, seq)
);

CREATE TABLE customers (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    email text,
    phone text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE properties (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    customer_id uuid NOT NULL,
    version bigint NOT NULL,
    line1 text NOT NULL,
    line2 text,
    city text NOT NULL,
    region text NOT NULL,
    postal_code text NOT NULL,
    country text NOT NULL,
    lat double precision,
    lon double precision,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, customer_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);

CREATE TABLE technicians (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    email text,
    phone text,
    trades text NOT NULL,
    active boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, email)
);

CREATE TABLE jobs (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL,
    status text NOT NULL,
    held_from text,
    customer_id uuid NOT NULL,
    property_id uuid NOT NULL,
    trade text NOT NULL,
    priority text NOT NULL,
    summary text NOT NULL,
    description text,
    window_start timestamptz,
    window_end timestamptz,
    technician_id uuid,
    sla_deadline timestamptz NOT NULL,
    visit_started_at timestamptz,
    completed_at timestamptz,
    callback_of uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, customer_id, property_id)
        REFERENCES properties (organization_id, customer_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id),
    FOREIGN KEY (organization_id, callback_of) REFERENCES jobs (organization_id, id)
);
CREATE INDEX jobs_by_status ON jobs (organization_id, status, id);
CREATE INDEX jobs_by_technician ON jobs (organization_id, technician_id, id);

CREATE TABLE job_events (
    organization_id uuid NOT NULL,
    job_id uuid NOT NULL,
    version bigint NOT NULL,
    change text NOT NULL,
    from_status text,
    to_status text NOT NULL,
    actor_user_id uuid,
    reason text,
    at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, job_id, version),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);

-- The durable workflow engine (DESIGN §4.3).
CREATE TABLE workflows (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    name text NOT NULL,
    procedure text NOT NULL,
    idempotency_key uuid NOT NULL,
    fingerprint text NOT NULL,
    input text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    output text,
    error text,
    trace_id text,
    actor_user_id uuid,
    executor_id text,
    attempts bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    completed_at timestamptz,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, procedure, idempotency_key)
);
CREATE INDEX workflows_by_status ON workflows (organization_id, status, id);

CREATE TABLE workflow_steps (
    organization_id uuid NOT NULL,
    workflow_id uuid NOT NULL,
    step_index bigint NOT NULL,
    name text NOT NULL,
    output text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, workflow_id, step_index),
    FOREIGN KEY (organization_id, workflow_id) REFERENCES workflows (organization_id, id)
);

-- The engine's claim queue: one row per pending workflow, with its lease. Recovery must find
-- pending work across organizations before it can set one, so this is not a tenant table; it
-- holds ids and leases only, never a workflow's input or output.
CREATE TABLE workflow_queue (
    workflow_id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    name text NOT NULL,
    executor_id text NOT NULL,
    lease_expires_at timestamptz NOT NULL
);
CREATE INDEX workflow_queue_by_lease ON workflow_queue (lease_expires_at);

-- Row-level security: every tenant table, ENABLE and FORCE, the same USING and WITH CHECK.
-- A pooled connection that once had the setting reads it back as '', not NULL, hence NULLIF.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
    USING (id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('app.organization_id', true), '')::uuid);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['feed_counters', 'change_feed', 'customers', 'properties',
                             'technicians', 'jobs', 'job_events', 'workflows', 'workflow_steps']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)',
            t);
    END LOOP;
END
$$;
