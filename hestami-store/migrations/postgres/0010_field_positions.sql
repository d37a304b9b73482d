-- Where technicians are (issue 13): every position a device reports (`technician/v1/reportLocation`,
-- or a field move that carries a location), at most MAX_BREADCRUMBS_PER_DAY per technician in any
-- 24 hours and kept 30 days; and each technician's last known position, whatever the cap.
CREATE TABLE technician_positions (
    organization_id uuid NOT NULL,
    technician_id uuid NOT NULL,
    id uuid NOT NULL,
    device_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    accuracy_m double precision,
    source text NOT NULL CHECK (source IN ('report', 'move')),
    PRIMARY KEY (organization_id, technician_id, id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);
CREATE INDEX technician_positions_by_time ON technician_positions (organization_id, technician_id, device_time);

CREATE TABLE technician_last_positions (
    organization_id uuid NOT NULL,
    technician_id uuid NOT NULL,
    device_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    accuracy_m double precision,
    PRIMARY KEY (organization_id, technician_id),
    FOREIGN KEY (organization_id, technician_id) REFERENCES technicians (organization_id, id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['technician_positions', 'technician_last_positions']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I '
            'USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)', t);
    END LOOP;
END $$;
