-- Credit notes (issue 15): their own gapless per-organization number sequence, taken in the
-- transaction that records the note as invoice numbers are, and one row per note (the invoice's
-- body holds the note itself; the row keeps numbers unique and finds a note's invoice).
CREATE TABLE credit_note_sequences (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    last_value bigint NOT NULL
);

CREATE TABLE credit_notes (
    organization_id uuid NOT NULL,
    id uuid NOT NULL,
    invoice_id uuid NOT NULL,
    number bigint NOT NULL,
    total text NOT NULL,
    issue_date date NOT NULL,
    refund_id uuid,
    at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, number),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id)
);
CREATE INDEX credit_notes_invoice ON credit_notes (organization_id, invoice_id);

-- A pending refund that pays back a credit note carries what the note credits, so no other
-- credit note of the invoice is taken while the refund is with the provider.
ALTER TABLE payments ADD COLUMN credit text;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['credit_note_sequences', 'credit_notes']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;
