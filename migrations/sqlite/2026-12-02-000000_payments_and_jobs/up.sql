-- Payment attempts (§2.6), the provider events already applied, and the durable job queue.
-- See crates/persistence/src/payments.rs and jobs.rs.
--
-- Same portable types as the earlier migrations: ids are TEXT holding hyphenated lower-case
-- UUIDs, times are TIMESTAMP holding UTC text, money is BIGINT minor units. TEXT compares
-- bytewise (BINARY collation) by default, as the "C" collation makes it on PostgreSQL.

CREATE TABLE payments (
    -- UUIDv7: orders by creation time, which is the listing's order (newest first).
    id                 TEXT NOT NULL,
    order_id           TEXT NOT NULL,
    -- The order's customer (who may see the attempt), whoever paid.
    customer_id        TEXT NOT NULL,
    status             TEXT NOT NULL,
    -- The order's total when the attempt was made, in minor units of `currency`.
    amount             BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    -- Which provider adapter handled it, e.g. `stripe`.
    provider           TEXT NOT NULL,
    -- The provider's id for the charge (Stripe: the PaymentIntent id), once known.
    provider_reference TEXT,
    failure_code       TEXT,
    failure_message    TEXT,
    -- `scope:key` of the Idempotency-Key of the request that created the attempt, if any.
    request_key        TEXT,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    CONSTRAINT payments_pkey PRIMARY KEY (id),
    CONSTRAINT payments_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT payments_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES users (id),
    CONSTRAINT payments_status_check CHECK (status IN ('processing', 'succeeded', 'failed', 'refunded')),
    CONSTRAINT payments_amount_check CHECK (amount > 0)
);

-- A request (its Idempotency-Key) creates at most one attempt per order.
CREATE UNIQUE INDEX payments_order_id_request_key_key ON payments (order_id, request_key) WHERE request_key IS NOT NULL;
-- A provider's charge belongs to at most one attempt; also serves `find_by_reference`.
CREATE UNIQUE INDEX payments_provider_reference_key ON payments (provider, provider_reference)
    WHERE provider_reference IS NOT NULL;
-- At most one `processing` attempt per order. SQLite names only the columns when it refuses a
-- row ("UNIQUE constraint failed: payments.order_id"), which is how the adapter recognises this
-- index to answer `AlreadyProcessing`; no other unique key of `payments` is `order_id` alone.
-- Created last of the unique indexes: SQLite checks the newest index first, so a second
-- attempt of a processing order is reported as this conflict before any other.
CREATE UNIQUE INDEX payments_one_processing_per_order ON payments (order_id) WHERE status = 'processing';
-- GET /v1/orders/{id}/payments: one order's attempts by id, newest first.
CREATE INDEX payments_order_id_id_idx ON payments (order_id, id);

-- Provider events already applied: each is applied at most once, whatever the number and
-- order of its deliveries.
CREATE TABLE provider_events (
    provider   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    CONSTRAINT provider_events_pkey PRIMARY KEY (provider, event_id)
);

-- Durable background jobs. A worker claims a due job by setting `locked_until` (its lease) in a
-- write transaction (SQLite has one writer at a time); a worker that dies loses it when the
-- lease ends.
CREATE TABLE jobs (
    id           TEXT NOT NULL,
    -- `reconcile_payment` or `refund_payment` (checked by the adapter, which refuses unknown
    -- kinds when it reads them).
    kind         TEXT NOT NULL,
    -- What the job is about, e.g. a payment id.
    subject      TEXT NOT NULL,
    run_at       TIMESTAMP NOT NULL,
    -- Failed attempts so far.
    attempts     INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    last_error   TEXT,
    created_at   TIMESTAMP NOT NULL,
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    -- One job per (kind, subject): enqueueing it again is a no-op (`ON CONFLICT DO NOTHING`).
    CONSTRAINT jobs_kind_subject_key UNIQUE (kind, subject),
    CONSTRAINT jobs_attempts_check CHECK (attempts >= 0)
);

-- Claiming the earliest due job.
CREATE INDEX jobs_run_at_idx ON jobs (run_at);
