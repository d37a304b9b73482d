-- Where technicians are (issue 13): every position a device reports (`technician/v1/reportLocation`,
-- or a field move that carries a location), at most MAX_BREADCRUMBS_PER_DAY per technician in any
-- 24 hours and kept 30 days; and each technician's last known position, whatever the cap.
CREATE TABLE technician_positions (
    organization_id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    id BLOB NOT NULL,
    device_time TEXT NOT NULL,
    received_at TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    accuracy_m REAL,
    source TEXT NOT NULL CHECK (source IN ('report', 'move')),
    PRIMARY KEY (organization_id, technician_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
CREATE INDEX technician_positions_by_time ON technician_positions (organization_id, technician_id, device_time);

CREATE TABLE technician_last_positions (
    organization_id BLOB NOT NULL,
    technician_id BLOB NOT NULL,
    device_time TEXT NOT NULL,
    received_at TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    accuracy_m REAL,
    PRIMARY KEY (organization_id, technician_id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
