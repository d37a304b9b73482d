-- A property's access notes (issue 13): see the PostgreSQL migration of the same number.
ALTER TABLE properties ADD COLUMN access_notes TEXT;
