-- 0002_identity: what signing in needs besides the user row: the failed
-- sign-in log behind the login limit, one-time codes, password reset
-- tokens, and the mail outbox.

-- Sliding log of sign-in attempts per (email, client address): login and
-- otp/verify insert a row before checking the secret and delete the rows
-- of that pair on success, so what remains are failures. The limit counts
-- the rows of the last 15 minutes; rows older than that are swept by the
-- sidecar as it goes. email is kept as typed (normalised), known or not,
-- so the limit says nothing about which addresses have accounts.
CREATE TABLE login_attempts (
    id                  bigserial PRIMARY KEY,
    email               text NOT NULL,
    client_ip           text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX login_attempts_key_idx
    ON login_attempts (email, client_ip, created_at DESC);
CREATE INDEX login_attempts_created_idx ON login_attempts (created_at);

-- One outstanding sign-in code per user: a new request replaces the row
-- (new code, new expiry, tries back to 0). Only the SHA-256 of
-- "<user id>:<code>" is stored.
CREATE TABLE otp_codes (
    user_id             uuid PRIMARY KEY
                        REFERENCES users (id) ON DELETE CASCADE,
    code_hash           text NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- Password reset tokens: only the SHA-256 of the token is stored. Using
-- one marks every outstanding token of the user used.
CREATE TABLE password_resets (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash          text NOT NULL UNIQUE
                        CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX password_resets_user_idx ON password_resets (user_id);

-- Every message the platform sends (codes, resets, invites). Written in
-- the transaction of the change that causes it; delivered by the sidecar
-- through sendmail when one is configured (sent_at), retried with backoff
-- up to 5 times (attempts, last_error, next_attempt_at).
CREATE TABLE outbox (
    id                  bigserial PRIMARY KEY,
    to_addr             text NOT NULL CHECK (length(to_addr) BETWEEN 3 AND 320),
    subject             text NOT NULL,
    body                text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    attempts            integer NOT NULL DEFAULT 0,
    last_error          text,
    next_attempt_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at)
    WHERE sent_at IS NULL;
CREATE INDEX outbox_to_idx ON outbox (to_addr, id DESC);
