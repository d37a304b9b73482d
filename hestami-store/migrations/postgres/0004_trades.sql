-- The organization's trade catalogue (issue 9): the trades its jobs, technicians, licences,
-- rules, areas and prices may name. No row means the shipped default list.
CREATE TABLE trade_catalogues (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL,
    trades text NOT NULL,
    updated_at timestamptz NOT NULL
);

ALTER TABLE trade_catalogues ENABLE ROW LEVEL SECURITY;
ALTER TABLE trade_catalogues FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON trade_catalogues
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
