-- Appointments and crews (issue 11): a job has one or more visits, each with its own window,
-- state and crew. Jobs driven through job/v2 say so (`lifecycle = 'v2'`): their bookings are
-- their appointments, and `window_start`/`window_end`/`technician_id` on the job only summarise
-- the current visit for v1 readers. A v1 job's booking stays its own window and technician.
ALTER TABLE jobs ADD COLUMN lifecycle text NOT NULL DEFAULT 'v1' CHECK (lifecycle IN ('v1', 'v2'));
ALTER TABLE jobs ADD COLUMN sla_breached_at timestamptz;
CREATE INDEX jobs_by_sla ON jobs (organization_id, sla_deadline, id);
CREATE INDEX jobs_by_window ON jobs (organization_id, window_start, id);

CREATE TABLE appointments (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    job_id uuid NOT NULL,
    version bigint NOT NULL,
    status text NOT NULL,
    held_from text,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    estimated_minutes bigint NOT NULL CHECK (estimated_minutes BETWEEN 1 AND 1440),
    -- The window end for which a missed window was recorded (once per window).
    missed_window_end timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX appointments_by_window ON appointments (organization_id, window_start, id);
CREATE INDEX appointments_by_job ON appointments (organization_id, job_id, window_start);

-- Who is on each appointment: one lead at most, helpers in the order they were added.
CREATE TABLE appointment_crew (
    organization_id uuid NOT NULL,
    appointment_id uuid NOT NULL,
    technician_id uuid NOT NULL,
    role text NOT NULL CHECK (role IN ('lead', 'helper')),
    position bigint NOT NULL,
    PRIMARY KEY (organization_id, appointment_id, technician_id),
    FOREIGN KEY (organization_id, appointment_id) REFERENCES appointments (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
CREATE INDEX appointment_crew_by_technician ON appointment_crew (organization_id, technician_id);

-- What happened to a job's schedule that the v1 job timeline does not show: appointments
-- added, moved and re-crewed, SLA overrides and breaches, missed windows.
CREATE TABLE schedule_events (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    job_id uuid NOT NULL,
    appointment_id uuid,
    kind text NOT NULL,
    data text NOT NULL,
    actor_user_id uuid,
    reason text,
    at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX schedule_events_by_job ON schedule_events (organization_id, job_id, at, id);

-- The organization's travel model and arrival windows; no row means the defaults.
CREATE TABLE scheduling_settings (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL,
    settings text NOT NULL,
    updated_at timestamptz NOT NULL
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['appointments', 'appointment_crew', 'schedule_events', 'scheduling_settings']
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
