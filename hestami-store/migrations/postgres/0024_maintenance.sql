-- Maintenance agreements (issue 17): plans (templates), agreements on them, the visits their
-- schedules generated as jobs, and the invoices of their billing periods. Every table is a
-- tenant table. An agreement's period invoice has no job, so an invoice's job becomes optional.

ALTER TABLE invoices ALTER COLUMN job_id DROP NOT NULL;

CREATE TABLE maintenance_plans (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    active boolean NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, name)
);

-- `next_attention` is the first local date the agreement needs its timer (a visit to generate,
-- a period to bill, the term's end); the body holds the schedules and their cursors.
CREATE TABLE maintenance_agreements (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    plan_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('draft', 'active', 'suspended', 'expired', 'cancelled')),
    start_date date NOT NULL,
    term_end date NOT NULL,
    next_attention date,
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, plan_id) REFERENCES maintenance_plans (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);
CREATE INDEX maintenance_agreements_by_status ON maintenance_agreements (organization_id, status);
CREATE INDEX maintenance_agreements_by_customer ON maintenance_agreements (organization_id, customer_id);

-- One row per generated visit: its identity is the agreement, the plan visit (`slot`), the
-- schedule's revision, the occurrence's index and the property — the primary key refuses a
-- second job for it.
CREATE TABLE maintenance_visits (
    organization_id uuid NOT NULL,
    agreement_id uuid NOT NULL,
    slot bigint NOT NULL,
    revision bigint NOT NULL,
    occurrence bigint NOT NULL,
    property_id uuid NOT NULL,
    due_on date NOT NULL,
    job_id uuid NOT NULL,
    generated_on date NOT NULL,
    late boolean NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, agreement_id, slot, revision, occurrence, property_id),
    FOREIGN KEY (organization_id, agreement_id) REFERENCES maintenance_agreements (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, property_id) REFERENCES properties (organization_id, id)
);
CREATE INDEX maintenance_visits_by_job ON maintenance_visits (organization_id, job_id);

-- One invoice per billing period (the period's first day names it).
CREATE TABLE agreement_invoices (
    organization_id uuid NOT NULL,
    agreement_id uuid NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    invoice_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, agreement_id, period_start),
    UNIQUE (organization_id, invoice_id),
    FOREIGN KEY (organization_id, agreement_id) REFERENCES maintenance_agreements (organization_id, id),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['maintenance_plans', 'maintenance_agreements', 'maintenance_visits',
                             'agreement_invoices']
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
