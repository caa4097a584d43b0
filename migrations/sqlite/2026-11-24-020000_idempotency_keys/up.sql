-- Idempotency-Key records (§1.4): one row per (caller, key), claimed as `in_progress` with a
-- lease, completed with the response in the same transaction as the change it records, purged
-- after 24 hours. See crates/persistence/src/idempotency.rs.

CREATE TABLE idempotency_keys (
    -- `user:<uuid>` or `anonymous`.
    scope            TEXT NOT NULL,
    key              TEXT NOT NULL,
    -- A digest of method, path and body: what "the same request" means.
    fingerprint      TEXT NOT NULL,
    state            TEXT NOT NULL,
    -- The stored response, set once completed.
    response_status  INTEGER,
    -- A JSON array of [name, value] pairs, in order.
    response_headers TEXT,
    response_body    BLOB,
    created_at       TIMESTAMP NOT NULL,
    -- While in progress: the claim is its holder's until then; afterwards another request
    -- may take it over (its holder died). The value also identifies the holder's claim.
    locked_until     TIMESTAMP NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_keys_state_check CHECK (state IN ('in_progress', 'completed')),
    CONSTRAINT idempotency_keys_response_check CHECK (
        state = 'in_progress' OR (response_status IS NOT NULL AND response_headers IS NOT NULL AND response_body IS NOT NULL)
    )
);

-- The purge deletes by age.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
