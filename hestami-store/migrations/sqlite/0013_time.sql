-- Time tracking (issue 13): clock punches (append-only), each week's timesheet state, what was
-- done to a timesheet (submitted, approved, reopened by a punch after approval, with its
-- reason), and the organization's overtime rule (no row: over 8 h a day or 40 h a week).
CREATE TABLE time_punches (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('clock_in', 'break_start', 'break_end', 'clock_out')),
    at TEXT NOT NULL,
    device TEXT,
    received_at TEXT NOT NULL,
    actor_user_id BLOB,
    reason TEXT,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
CREATE INDEX time_punches_by_time ON time_punches (organization_id, technician_id, at);

CREATE TABLE timesheets (
    organization_id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    week TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'submitted', 'approved')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, technician_id, week),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

CREATE TABLE timesheet_events (
    organization_id BLOB NOT NULL,
    id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    week TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('submitted', 'approved', 'reopened')),
    reason TEXT,
    actor_user_id BLOB,
    at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, technician_id, week) REFERENCES timesheets (organization_id, technician_id, week)
);

CREATE TABLE overtime_rules (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    version INTEGER NOT NULL,
    daily_minutes INTEGER,
    weekly_minutes INTEGER,
    updated_at TEXT NOT NULL
);
