-- Blobs and attachments (issue 13): see the PostgreSQL migration of the same number.
CREATE TABLE blobs (
    organization_id BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    media_type TEXT NOT NULL,
    uploaded_by BLOB,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, sha256)
);

CREATE TABLE attachments (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('photo', 'document', 'signature')),
    attached_to TEXT NOT NULL CHECK (attached_to IN ('job', 'appointment', 'estimate', 'invoice')),
    subject_id BLOB NOT NULL,
    job_id BLOB,
    caption TEXT,
    signed_by TEXT,
    device TEXT,
    author_user_id BLOB,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, sha256) REFERENCES blobs (organization_id, sha256),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX attachments_by_subject ON attachments (organization_id, attached_to, subject_id, created_at);
CREATE INDEX attachments_by_job ON attachments (organization_id, job_id, created_at);
CREATE INDEX attachments_by_blob ON attachments (organization_id, sha256);

CREATE TABLE server_keys (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
