-- Forms on maintenance visits (issue 17): a plan's visit may name form templates (checklists)
-- that its generated job must have answered before it is completed. The visit records them as
-- a JSON array of template ids; visits generated before hold none.

ALTER TABLE maintenance_visits ADD COLUMN form_template_ids TEXT NOT NULL DEFAULT '[]';
