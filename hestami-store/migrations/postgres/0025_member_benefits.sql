-- Member benefits (issue 17): a customer with an active agreement gets its plan's discount on
-- other work and its priority's response window. Pricing and job creation look the benefits up
-- in SQL, so a plan's benefits (fixed when it is created) get columns of their own; existing
-- plans take them from their body.

ALTER TABLE maintenance_plans ADD COLUMN member_discount text;
ALTER TABLE maintenance_plans ADD COLUMN member_priority text
    CHECK (member_priority IN ('emergency', 'urgent', 'routine'));

UPDATE maintenance_plans SET
    member_discount = (body::jsonb) -> 'benefits' ->> 'discount',
    member_priority = (body::jsonb) -> 'benefits' ->> 'priority';
