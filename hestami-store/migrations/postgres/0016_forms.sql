-- Forms (issue 13): checklist templates, one row per version (a version is never changed), and
-- the answers given in the field (append-only; the latest answer to a question counts).
CREATE TABLE form_templates (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    name text NOT NULL,
    trade text,
    required_before_completion boolean NOT NULL,
    questions text NOT NULL,
    created_by uuid,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id, version)
);

CREATE TABLE form_answers (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    job_id uuid NOT NULL,
    appointment_id uuid,
    template_id uuid NOT NULL,
    template_version bigint NOT NULL,
    question_key text NOT NULL,
    answer text NOT NULL,
    device text,
    author_user_id uuid,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, appointment_id) REFERENCES appointments (organization_id, id),
    FOREIGN KEY (organization_id, template_id, template_version)
        REFERENCES form_templates (organization_id, id, version)
);
CREATE INDEX form_answers_by_job ON form_answers (organization_id, job_id, created_at);

ALTER TABLE form_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE form_templates FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON form_templates
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
ALTER TABLE form_answers ENABLE ROW LEVEL SECURITY;
ALTER TABLE form_answers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON form_answers
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
