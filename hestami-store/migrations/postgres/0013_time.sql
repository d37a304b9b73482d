-- Time tracking (issue 13): clock punches (append-only), each week's timesheet state, what was
-- done to a timesheet (submitted, approved, reopened by a punch after approval, with its
-- reason), and the organization's overtime rule (no row: over 8 h a day or 40 h a week).
CREATE TABLE time_punches (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    technician_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('clock_in', 'break_start', 'break_end', 'clock_out')),
    at timestamptz NOT NULL,
    device text,
    received_at timestamptz NOT NULL,
    actor_user_id uuid,
    reason text,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
CREATE INDEX time_punches_by_time ON time_punches (organization_id, technician_id, at);

CREATE TABLE timesheets (
    organization_id uuid NOT NULL,
    technician_id uuid NOT NULL,
    week date NOT NULL,
    version bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'submitted', 'approved')),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, technician_id, week),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

CREATE TABLE timesheet_events (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    technician_id uuid NOT NULL,
    week date NOT NULL,
    kind text NOT NULL CHECK (kind IN ('submitted', 'approved', 'reopened')),
    reason text,
    actor_user_id uuid,
    at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id, week) REFERENCES timesheets (organization_id, technician_id, week)
);

CREATE TABLE overtime_rules (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL,
    daily_minutes bigint,
    weekly_minutes bigint,
    updated_at timestamptz NOT NULL
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['time_punches', 'timesheets', 'timesheet_events', 'overtime_rules']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I '
            'USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)', t);
    END LOOP;
END $$;
