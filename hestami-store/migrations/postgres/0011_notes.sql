-- Notes on a job or one of its appointments (issue 13): append-only, so offline devices never
-- conflict over them. `device` holds the device's time and place as JSON, when given.
CREATE TABLE notes (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    job_id uuid NOT NULL,
    appointment_id uuid,
    body text NOT NULL,
    author_user_id uuid,
    device text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, appointment_id) REFERENCES appointments (organization_id, id)
);
CREATE INDEX notes_by_job ON notes (organization_id, job_id, created_at);

ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notes
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
