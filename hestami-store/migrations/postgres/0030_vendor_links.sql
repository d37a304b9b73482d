-- HOA work orders (issue 18), second piece: an association's community properties and vendor
-- requirements (tenant tables of the association), and the link between an association and a
-- contractor it approves as a vendor. A link row names both organizations and is visible to
-- exactly those two: its policy admits a row when either id is the transaction's organization,
-- for reads and for writes. Neither side reaches the other's tenant rows through it.

CREATE TABLE hoa_properties (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('unit', 'common_area')),
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, name)
);

CREATE TABLE vendor_requirements (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL,
    body text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE vendor_links (
    id uuid PRIMARY KEY,
    hoa_organization_id uuid NOT NULL REFERENCES organizations (id),
    contractor_organization_id uuid NOT NULL REFERENCES organizations (id),
    version bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('invited', 'active', 'declined', 'ended')),
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (hoa_organization_id, contractor_organization_id),
    CHECK (hoa_organization_id <> contractor_organization_id)
);
CREATE INDEX vendor_links_by_contractor ON vendor_links (contractor_organization_id);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['hoa_properties', 'vendor_requirements']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)',
            t);
    END LOOP;
END
$$;

ALTER TABLE vendor_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE vendor_links FORCE ROW LEVEL SECURITY;
CREATE POLICY link_parties ON vendor_links
    USING (hoa_organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid
           OR contractor_organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (hoa_organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid
                OR contractor_organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
