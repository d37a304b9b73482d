-- Forms (issue 13): see the PostgreSQL migration of the same number.
CREATE TABLE form_templates (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    name TEXT NOT NULL,
    trade TEXT,
    required_before_completion INTEGER NOT NULL,
    questions TEXT NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id, version)
);

CREATE TABLE form_answers (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    job_id BLOB NOT NULL,
    appointment_id BLOB,
    template_id BLOB NOT NULL,
    template_version INTEGER NOT NULL,
    question_key TEXT NOT NULL,
    answer TEXT NOT NULL,
    device TEXT,
    author_user_id BLOB,
    created_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, job_id) REFERENCES jobs (organization_id, id),
    FOREIGN KEY (organization_id, appointment_id) REFERENCES appointments (organization_id, id),
    FOREIGN KEY (organization_id, template_id, template_version)
        REFERENCES form_templates (organization_id, id, version)
);
CREATE INDEX form_answers_by_job ON form_answers (organization_id, job_id, created_at);
