-- Open jobs by id and by technician (issue 13): a first sync pages a caller's open jobs in id
-- order, and a technician's open jobs are a few among their own history of thousands. Partial
-- indexes keep closed and cancelled jobs out of both ranges.
CREATE INDEX jobs_open ON jobs (organization_id, id) WHERE status NOT IN ('closed', 'cancelled');
CREATE INDEX jobs_open_by_technician ON jobs (organization_id, technician_id, id)
    WHERE status NOT IN ('closed', 'cancelled');
