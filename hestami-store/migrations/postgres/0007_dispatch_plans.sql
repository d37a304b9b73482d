-- Plans made by dispatch/v1/optimize: what the optimizer proposed for a local day, the version
-- of every job, appointment and technician it read (applyPlan refuses a plan whose reads have
-- changed), and when it was applied.
CREATE TABLE dispatch_plans (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    day date NOT NULL,
    status text NOT NULL CHECK (status IN ('proposed', 'applied')),
    plan text NOT NULL,
    reads text NOT NULL,
    created_at timestamptz NOT NULL,
    applied_at timestamptz,
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX dispatch_plans_by_day ON dispatch_plans (organization_id, day, created_at);

ALTER TABLE dispatch_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE dispatch_plans FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dispatch_plans
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
