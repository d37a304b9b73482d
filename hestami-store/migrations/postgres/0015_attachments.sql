-- Blobs and attachments (issue 13). A blob is named by the SHA-256 of its bytes within its
-- organization; its bytes live in the blob store (local files or S3), under a key that starts
-- with the organization. An attachment ties a blob to a job, appointment, estimate or invoice;
-- `job_id` is the subject's job (when it has one), for a technician's scope and a job's
-- signature. Attachments are append-only.
CREATE TABLE blobs (
    organization_id uuid NOT NULL,
    sha256 text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    media_type text NOT NULL,
    uploaded_by uuid,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, sha256)
);

CREATE TABLE attachments (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    sha256 text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('photo', 'document', 'signature')),
    attached_to text NOT NULL CHECK (attached_to IN ('job', 'appointment', 'estimate', 'invoice')),
    subject_id uuid NOT NULL,
    job_id uuid,
    caption text,
    signed_by text,
    device text,
    author_user_id uuid,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, sha256) REFERENCES blobs (organization_id, sha256),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id)
);
CREATE INDEX attachments_by_subject ON attachments (organization_id, attached_to, subject_id, created_at);
CREATE INDEX attachments_by_job ON attachments (organization_id, job_id, created_at);
CREATE INDEX attachments_by_blob ON attachments (organization_id, sha256);

ALTER TABLE blobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE blobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON blobs
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
ALTER TABLE attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON attachments
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);

-- Server-wide secrets made on first use (the key that signs download links), shared by every
-- process of a deployment.
CREATE TABLE server_keys (
    name text PRIMARY KEY,
    secret text NOT NULL
);
