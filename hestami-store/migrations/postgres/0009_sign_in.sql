-- Sign-in for people (issue 13): passwords, invitations, devices and their refresh tokens, and
-- the counters that slow down password guessing. These are directory tables, shared like users
-- and api_tokens: sign-in happens before an organization is chosen. Every row that belongs to
-- an organization names it, and every query of the store names it too.

-- An argon2id hash in the PHC string format; NULL until the user sets a password.
ALTER TABLE users ADD COLUMN password_hash text;
ALTER TABLE users ADD COLUMN password_set_at timestamptz;

-- An access token issued to a device is bound to the device's organization: it is refused in any
-- other, and revoking the device revokes it.
ALTER TABLE api_tokens ADD COLUMN organization_id uuid REFERENCES organizations (id);
ALTER TABLE api_tokens ADD COLUMN device_id uuid;
CREATE INDEX api_tokens_by_device ON api_tokens (user_id, device_id) WHERE device_id IS NOT NULL;

-- An invitation to set a password: only the SHA-256 of its code is kept. Single use.
CREATE TABLE user_invites (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id uuid NOT NULL REFERENCES users (id),
    code_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz
);
CREATE INDEX user_invites_by_user ON user_invites (organization_id, user_id);

-- A device a user signed in on, for one organization. `id` is the app's own installation id.
CREATE TABLE devices (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id uuid NOT NULL REFERENCES users (id),
    id uuid NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    revoked_at timestamptz,
    PRIMARY KEY (organization_id, user_id, id)
);

-- Refresh tokens, by hash. Each use replaces the token with a new one (`replaced_at`); a token
-- presented again after it was replaced revokes its device, unless within the short grace that
-- covers a lost response.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    organization_id uuid NOT NULL,
    user_id uuid NOT NULL,
    device_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    replaced_at timestamptz,
    FOREIGN KEY (organization_id, user_id, device_id) REFERENCES devices (organization_id, user_id, id)
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (organization_id, user_id, device_id);

-- Failed sign-ins per account (`account:<e-mail>`) and per client address (`address:<ip>`) in
-- the current window.
CREATE TABLE auth_throttle (
    key text PRIMARY KEY,
    failures bigint NOT NULL,
    window_started_at timestamptz NOT NULL
);
