-- A plan that waives the trip fee (issue 17): pricing reads a member's benefits in SQL, so the
-- waiver gets a column like the discount and the priority; existing plans take it from their
-- body.

ALTER TABLE maintenance_plans ADD COLUMN member_waives_trip_fee boolean NOT NULL DEFAULT false;

UPDATE maintenance_plans SET
    member_waives_trip_fee = COALESCE(((body::jsonb) -> 'benefits' ->> 'waiveTripFee')::boolean, false);
