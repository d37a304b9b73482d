-- Delivery (issue 14): the outbox relay's bookkeeping, per-organization message templates, and
-- webhook subscriptions fed from the change feed. Every table is a tenant table; the relay finds
-- due work through the shared `timers` table (`outbox/<message id>`, `webhook/<subscription id>`).

-- What became of each message: pending until delivered, or dead after its retries ran out (an
-- operator can re-drive it). `ordering_key` says whose messages go out in order (one customer's,
-- the organization's own); `recipient` is the address it was last sent to; `failing_since` is
-- when the current run of failed attempts began (the relay gives up a while after it).
ALTER TABLE outbox ADD COLUMN ordering_key text;
ALTER TABLE outbox ADD COLUMN status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'delivered', 'dead'));
ALTER TABLE outbox ADD COLUMN attempts bigint NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN recipient text;
ALTER TABLE outbox ADD COLUMN last_error text;
ALTER TABLE outbox ADD COLUMN dead_at timestamptz;
ALTER TABLE outbox ADD COLUMN failing_since timestamptz;
-- Messages written before delivery existed are history, not news (an overdue notice for an
-- invoice paid since, a reminder for a licence renewed since): they are not sent now. They are
-- dead with the reason, and an operator can re-drive any of them.
-- The owner migrates, and FORCE ROW LEVEL SECURITY would hide every row from it (no
-- organization is set): lifted for this one statement.
ALTER TABLE outbox NO FORCE ROW LEVEL SECURITY;
UPDATE outbox SET status = 'dead', dead_at = created_at,
    last_error = 'written before delivery existed; re-drive it to send it';
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE INDEX outbox_by_order ON outbox (organization_id, ordering_key, created_at);
CREATE INDEX outbox_by_status ON outbox (organization_id, status, id);

-- One row per attempt to deliver a message.
CREATE TABLE delivery_attempts (
    organization_id uuid NOT NULL,
    message_id uuid NOT NULL,
    attempt bigint NOT NULL CHECK (attempt >= 1),
    at timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    detail text,
    PRIMARY KEY (organization_id, message_id, attempt),
    FOREIGN KEY (organization_id, message_id) REFERENCES outbox (organization_id, id)
);

-- The organization's message templates (JSON: kind → subject, text and HTML); no row means the
-- shipped defaults.
CREATE TABLE notification_settings (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL,
    templates text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Webhook subscriptions. `delivered_through` is the feed position handled last (delivered or
-- dead-lettered); `failing_since` and `attempts` describe the event at the head while it fails.
CREATE TABLE webhook_subscriptions (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    id uuid NOT NULL,
    version bigint NOT NULL,
    url text NOT NULL,
    event_types text NOT NULL,
    secret text NOT NULL,
    previous_secret text,
    previous_secret_expires_at timestamptz,
    active boolean NOT NULL,
    delivered_through bigint NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    failing_since timestamptz,
    last_error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id)
);

-- The delivery log: one row per attempt to deliver one feed position to one subscription.
CREATE TABLE webhook_deliveries (
    organization_id uuid NOT NULL,
    subscription_id uuid NOT NULL,
    id uuid NOT NULL,
    seq bigint NOT NULL,
    event_type text NOT NULL,
    attempt bigint NOT NULL CHECK (attempt >= 1),
    at timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'skipped')),
    status_code bigint,
    detail text,
    duration_ms bigint NOT NULL,
    PRIMARY KEY (organization_id, subscription_id, id),
    FOREIGN KEY (organization_id, subscription_id) REFERENCES webhook_subscriptions (organization_id, id)
);
CREATE INDEX webhook_deliveries_by_seq ON webhook_deliveries (organization_id, subscription_id, seq);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['delivery_attempts', 'notification_settings', 'webhook_subscriptions',
                             'webhook_deliveries']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.organization_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

-- workflow/v1/list pages in start order.
CREATE INDEX workflows_by_start ON workflows (organization_id, created_at, id);
