-- Per-visit billing (issue 17): an agreement billed per visit invoices each visit's job when it
-- is completed; the visit row records the invoice, so each visit is billed once.

ALTER TABLE maintenance_visits ADD COLUMN invoice_id uuid;
ALTER TABLE maintenance_visits ADD FOREIGN KEY (organization_id, invoice_id)
    REFERENCES invoices (organization_id, id);
