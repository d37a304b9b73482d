-- What a community association may ask of its vendors (issue 18): the parties an insurance
-- certificate names as additional insureds, and the day the contractor's W-9 was received.

ALTER TABLE insurance_policies ADD COLUMN additional_insureds text NOT NULL DEFAULT '[]';
ALTER TABLE contractor_profiles ADD COLUMN w9_received_on date;
