-- Per-visit billing (issue 17): an agreement billed per visit invoices each visit's job when it
-- is completed; the visit row records the invoice, so each visit is billed once. (SQLite adds a
-- column without a composite foreign key; the store writes only its own invoices' ids.)

ALTER TABLE maintenance_visits ADD COLUMN invoice_id BLOB;
