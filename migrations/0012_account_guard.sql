-- 0012_account_guard: a failure budget per account, on top of the limit
-- per (email, client address) in login_attempts, which any number of
-- addresses multiplies.
--
-- One row per email as typed (normalised), known or not, so the budget
-- and its answers say nothing about which addresses have accounts. Every
-- sign-in attempt (login, otp/verify, password change) reserves one
-- failure with a single INSERT ... ON CONFLICT DO UPDATE ... WHERE under
-- the row lock, which refuses (returns no row) once the budget is spent;
-- a success gives its reservation back. So the counts hold across sidecar
-- threads and processes.
--
--   failures       sign-in failures in the window starting at window_start
--                  (24 hours). 50 lock the account: the row then never
--                  changes until a password reset by mail deletes it.
--   otp_failures   wrong sign-in codes in the window starting at
--                  otp_window_start (15 minutes), across codes: requesting
--                  a new code does not reset it. 10 refuse otp/verify
--                  until the window ends.
--
-- Rows that are not locked and whose windows have ended are swept by the
-- sidecar as it goes; a locked row stays until the reset (or until the
-- address is registered, for an email without an account).
CREATE TABLE account_guard (
    email               text PRIMARY KEY,
    failures            integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_start        timestamptz NOT NULL DEFAULT now(),
    otp_failures        integer NOT NULL DEFAULT 0 CHECK (otp_failures >= 0),
    otp_window_start    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX account_guard_sweep_idx ON account_guard (window_start)
    WHERE failures < 50;
