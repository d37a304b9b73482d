-- Delivery (issue 14): see the PostgreSQL migration of the same number.

-- What became of each message: pending until delivered, or dead after its retries ran out (an
-- operator can re-drive it). `ordering_key` says whose messages go out in order (one customer's,
-- the organization's own); `recipient` is the address it was last sent to; `failing_since` is
-- when the current run of failed attempts began (the relay gives up a while after it).
ALTER TABLE outbox ADD COLUMN ordering_key TEXT;
ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'delivered', 'dead'));
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN recipient TEXT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN dead_at TEXT;
ALTER TABLE outbox ADD COLUMN failing_since TEXT;
-- Messages written before delivery existed are history, not news (an overdue notice for an
-- invoice paid since, a reminder for a licence renewed since): they are not sent now. They are
-- dead with the reason, and an operator can re-drive any of them.
UPDATE outbox SET status = 'dead', dead_at = created_at,
    last_error = 'written before delivery existed; re-drive it to send it';
CREATE INDEX outbox_by_order ON outbox (organization_id, ordering_key, created_at);
CREATE INDEX outbox_by_status ON outbox (organization_id, status, id);

-- One row per attempt to deliver a message.
CREATE TABLE delivery_attempts (
    organization_id BLOB NOT NULL,
    message_id BLOB NOT NULL,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    at TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    detail TEXT,
    PRIMARY KEY (organization_id, message_id, attempt),
    FOREIGN KEY (organization_id, message_id) REFERENCES outbox (organization_id, id)
);

-- The organization's message templates (JSON: kind → subject, text and HTML); no row means the
-- shipped defaults.
CREATE TABLE notification_settings (
    organization_id BLOB PRIMARY KEY REFERENCES organizations (id),
    version INTEGER NOT NULL,
    templates TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Webhook subscriptions. `delivered_through` is the feed position handled last (delivered or
-- dead-lettered); `failing_since` and `attempts` describe the event at the head while it fails.
CREATE TABLE webhook_subscriptions (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TEXT,
    active INTEGER NOT NULL,
    delivered_through INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failing_since TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id)
);

-- The delivery log: one row per attempt to deliver one feed position to one subscription.
CREATE TABLE webhook_deliveries (
    organization_id BLOB NOT NULL,
    subscription_id BLOB NOT NULL,
    id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    at TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'skipped')),
    status_code INTEGER,
    detail TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (organization_id, subscription_id, id),
    FOREIGN KEY (organization_id, subscription_id) REFERENCES webhook_subscriptions (organization_id, id)
);
CREATE INDEX webhook_deliveries_by_seq ON webhook_deliveries (organization_id, subscription_id, seq);


-- workflow/v1/list pages in start order.
CREATE INDEX workflows_by_start ON workflows (organization_id, created_at, id);
