-- Who recorded each line of a job's actuals (issue 15); NULL for lines recorded before.
ALTER TABLE job_actuals ADD COLUMN recorded_by uuid;
