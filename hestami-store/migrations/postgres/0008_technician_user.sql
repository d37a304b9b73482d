-- A technician record linked to the user who signs in as them (issue 13): a member with the
-- `technician` role sees and moves only the jobs and appointments of the technician linked to
-- their user. One technician per user within an organization.
ALTER TABLE technicians ADD COLUMN user_id uuid;
CREATE UNIQUE INDEX technicians_by_user ON technicians (organization_id, user_id);
