-- A visit's planned start inside its arrival window (issue 12's first step): eligibility judges a
-- planned visit over [planned_start, planned_start + estimated_minutes) instead of its whole
-- window, so two visits whose windows overlap can share a technician when planned one after
-- the other.
ALTER TABLE appointments ADD COLUMN planned_start timestamptz;
