-- HOA work orders (issue 18), second piece: an association's community properties and vendor
-- requirements, and the link between an association and a contractor it approves as a vendor.
-- SQLite has no row-level security: the store names both organizations in every statement on
-- a link table, as it names the organization on a tenant table.

CREATE TABLE hoa_properties (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('unit', 'common_area')),
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, name)
);

CREATE TABLE vendor_requirements (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE vendor_links (
    id BLOB PRIMARY KEY,
    hoa_organization_id BLOB NOT NULL REFERENCES organizations (id),
    contractor_organization_id BLOB NOT NULL REFERENCES organizations (id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('invited', 'active', 'declined', 'ended')),
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (hoa_organization_id, contractor_organization_id),
    CHECK (hoa_organization_id <> contractor_organization_id)
);
CREATE INDEX vendor_links_by_contractor ON vendor_links (contractor_organization_id);
