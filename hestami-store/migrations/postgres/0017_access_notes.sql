-- A property's access notes (issue 13): how to get in and what to watch for, shown to the
-- technician with each visit.
ALTER TABLE properties ADD COLUMN access_notes text;
