-- Plans made by dispatch/v1/optimize: what the optimizer proposed for a local day, the version
-- of every job, appointment and technician it read (applyPlan refuses a plan whose reads have
-- changed), and when it was applied.
CREATE TABLE dispatch_plans (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    day TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('proposed', 'applied')),
    plan TEXT NOT NULL,
    reads TEXT NOT NULL,
    created_at TEXT NOT NULL,
    applied_at TEXT,
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX dispatch_plans_by_day ON dispatch_plans (organization_id, day, created_at);
