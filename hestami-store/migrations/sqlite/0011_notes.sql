-- Notes on a job or one of its appointments (issue 13): append-only, so offline devices never
-- conflict over them. `device` holds the device's time and place as JSON, when given.
CREATE TABLE notes (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    job_id BLOB NOT NULL,
    appointment_id BLOB,
    body TEXT NOT NULL,
    author_user_id BLOB,
    device TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, appointment_id) REFERENCES appointments (organization_id, id)
);
CREATE INDEX notes_by_job ON notes (organization_id, job_id, created_at);
