-- What each device was sent by sync/v1/pull (issue 13), so that only what a device holds is
-- ever tombstoned: an entity out of the caller's scope that the device never had yields
-- nothing. `tombstoned_seq` is the feed position that told the device to drop it; a pull from
-- an earlier cursor (its answer was lost) tells it again.
CREATE TABLE sync_sent (
    organization_id uuid NOT NULL,
    user_id uuid NOT NULL,
    device_id uuid NOT NULL,
    entity_kind text NOT NULL,
    entity_id uuid NOT NULL,
    tombstoned_seq bigint,
    PRIMARY KEY (organization_id, user_id, device_id, entity_kind, entity_id),
    FOREIGN KEY (organization_id) REFERENCES organizations (id)
);

ALTER TABLE sync_sent ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync_sent FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sync_sent
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
