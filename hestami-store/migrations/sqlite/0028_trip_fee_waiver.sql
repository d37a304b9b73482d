-- A plan that waives the trip fee (issue 17): pricing reads a member's benefits in SQL, so the
-- waiver gets a column like the discount and the priority; existing plans take it from their
-- body.

ALTER TABLE maintenance_plans ADD COLUMN member_waives_trip_fee BOOLEAN NOT NULL DEFAULT 0;

UPDATE maintenance_plans SET
    member_waives_trip_fee = COALESCE(json_extract(body, '$.benefits.waiveTripFee'), 0);
