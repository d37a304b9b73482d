-- Member benefits (issue 17): a customer with an active agreement gets its plan's discount on
-- other work and its priority's response window. Pricing and job creation look the benefits up
-- in SQL, so a plan's benefits (fixed when it is created) get columns of their own; existing
-- plans take them from their body.

ALTER TABLE maintenance_plans ADD COLUMN member_discount TEXT;
ALTER TABLE maintenance_plans ADD COLUMN member_priority TEXT
    CHECK (member_priority IN ('emergency', 'urgent', 'routine'));

UPDATE maintenance_plans SET
    member_discount = json_extract(body, '$.benefits.discount'),
    member_priority = json_extract(body, '$.benefits.priority');
