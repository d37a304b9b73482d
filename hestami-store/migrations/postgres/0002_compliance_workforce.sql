-- Onboarding and compliance, the rest of the workforce, eligibility inputs, the outbox and
-- durable timers. Same rules as 0001: composite keys and foreign keys, RLS on every tenant table.

CREATE TABLE contractor_profiles (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL,
    legal_name text,
    trade_names text NOT NULL,
    tax_id text,
    contact_email text,
    contact_phone text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE licenses (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    trade text NOT NULL,
    country text NOT NULL,
    region text,
    locality text,
    number text NOT NULL,
    issued_on date,
    expires_on date NOT NULL,
    document_ref text,
    status text NOT NULL CHECK (status IN ('pending', 'verified', 'rejected')),
    verified_by uuid,
    verified_at timestamptz,
    lapsed_at timestamptz,
    removed_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE insurance_policies (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    kind text NOT NULL,
    carrier text NOT NULL,
    policy_number text NOT NULL,
    per_occurrence_limit text NOT NULL,
    aggregate_limit text NOT NULL,
    effective_on date NOT NULL,
    expires_on date NOT NULL,
    certificate_ref text,
    lapsed_at timestamptz,
    removed_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id)
);

-- Requirements are data: one row per organization once it changes the shipped default.
CREATE TABLE compliance_requirements (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL,
    rules text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Service areas are replaced as a set; every set is kept (the highest version is current).
-- technician_id is NULL for the organization's own areas.
CREATE TABLE service_area_sets (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    technician_id uuid,
    version bigint NOT NULL,
    areas text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
CREATE INDEX service_area_sets_current ON service_area_sets (organization_id, technician_id, version);

ALTER TABLE technicians ADD COLUMN skills text NOT NULL DEFAULT '[]';
ALTER TABLE technicians ADD COLUMN home_lat double precision;
ALTER TABLE technicians ADD COLUMN home_lon double precision;
ALTER TABLE technicians ADD COLUMN daily_capacity bigint NOT NULL DEFAULT 8;

CREATE TABLE technician_certifications (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    technician_id uuid NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    issuer text NOT NULL,
    number text,
    expires_on date,
    trades text NOT NULL,
    lapsed_at timestamptz,
    removed_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

CREATE TABLE technician_shifts (
    organization_id uuid NOT NULL,
    technician_id uuid NOT NULL,
    effective_from date NOT NULL,
    spans text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, technician_id, effective_from),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

CREATE TABLE technician_time_off (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    technician_id uuid NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    reason text,
    removed_at timestamptz,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

ALTER TABLE jobs ADD COLUMN min_skill_level bigint NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN required_certifications text NOT NULL DEFAULT '[]';

-- Messages to the outside world (reminders, later webhooks), written in the transaction of the
-- step that decided to send them and delivered after commit.
CREATE TABLE outbox (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    kind text NOT NULL,
    payload text NOT NULL,
    workflow_id uuid,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    PRIMARY KEY (organization_id, id)
);

-- Durable timers: when each organization's scheduled workflows are next due. Like the claim
-- queue, the scheduler must find due timers across organizations before it can set one, so
-- this holds ids and times only and is not a tenant table.
CREATE TABLE timers (
    organization_id uuid NOT NULL,
    name text NOT NULL,
    due_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, name)
);
CREATE INDEX timers_due ON timers (due_at);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['contractor_profiles', 'licenses', 'insurance_policies',
                             'compliance_requirements', 'service_area_sets',
                             'technician_certifications', 'technician_shifts',
                             'technician_time_off', 'outbox']
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
