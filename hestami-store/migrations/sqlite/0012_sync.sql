-- What each device was sent by sync/v1/pull (issue 13), so that only what a device holds is
-- ever tombstoned: an entity out of the caller's scope that the device never had yields
-- nothing. `tombstoned_seq` is the feed position that told the device to drop it; a pull from
-- an earlier cursor (its answer was lost) tells it again.
CREATE TABLE sync_sent (
    organization_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    device_id BLOB NOT NULL,
    entity_kind TEXT NOT NULL,
    entity_id BLOB NOT NULL,
    tombstoned_seq INTEGER,
    PRIMARY KEY (organization_id, user_id, device_id, entity_kind, entity_id),
    FOREIGN KEY (organization_id) REFERENCES organizations (id)
);
