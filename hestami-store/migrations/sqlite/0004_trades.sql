-- The organization's trade catalogue (issue 9): the trades its jobs, technicians, licences,
-- rules, areas and prices may name. No row means the shipped default list.
CREATE TABLE trade_catalogues (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    version INTEGER NOT NULL,
    trades TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
