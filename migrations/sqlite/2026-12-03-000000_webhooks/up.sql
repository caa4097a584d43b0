-- Webhooks (§2.7): the endpoints admins register, the deliveries of feed events to them, and
-- how far the dispatcher has read the feed. See crates/persistence/src/webhooks.rs.
--
-- Same portable types as the earlier migrations: ids are TEXT holding hyphenated lower-case
-- UUIDs, times are TIMESTAMP holding UTC text, booleans are 0/1 (checked). TEXT compares
-- bytewise (BINARY collation) by default, as the "C" collation makes it on PostgreSQL.

CREATE TABLE webhook_endpoints (
    -- UUIDv7: orders by creation time, which is the listing's order (oldest first).
    id          TEXT NOT NULL,
    -- Checked against the destination policy when saved (and again at every delivery).
    url         TEXT NOT NULL,
    -- NULL: every event type, including types added later. Otherwise the types the endpoint
    -- receives, comma-separated (`order.placed,order.confirmed`): type names are lower-case
    -- words and dots, never a comma, and the adapter refuses an unknown one when it reads it.
    event_types TEXT,
    description TEXT,
    -- A disabled endpoint is sent nothing.
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    -- The signing secret (`whsec_…`): the receiver must be able to verify, so it is stored as
    -- is, not hashed. Never logged.
    secret      TEXT NOT NULL,
    -- Grows with every change (ETags, If-Match); checked in the UPDATE/DELETE itself.
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    CONSTRAINT webhook_endpoints_pkey PRIMARY KEY (id),
    -- "No types" is not a filter: NULL says "all".
    CONSTRAINT webhook_endpoints_event_types_check CHECK (event_types <> ''),
    CONSTRAINT webhook_endpoints_active_check CHECK (active IN (0, 1)),
    CONSTRAINT webhook_endpoints_version_check CHECK (version >= 1)
);

-- One event's delivery to one endpoint, however many attempts it takes.
CREATE TABLE webhook_deliveries (
    -- UUIDv7: orders by creation time, which is the log's order (newest first). Also the
    -- subject of the delivery's `deliver_webhook` job.
    id              TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    -- The feed event delivered (no foreign key: a delivery whose event is gone ends `failed`).
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL,
    -- Attempts made so far: only attempts that sent a request count.
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- The latest attempt's answer, if one came, and how long it took.
    response_status INTEGER,
    duration_ms     INTEGER,
    -- Why the latest attempt failed, in words safe to show an admin.
    error           TEXT,
    -- When the next attempt is due; only a pending delivery has one.
    next_attempt_at TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
    -- Deleting an endpoint deletes its delivery log; its jobs find nothing and end.
    CONSTRAINT webhook_deliveries_endpoint_id_fkey FOREIGN KEY (endpoint_id)
        REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- One delivery per (endpoint, event): an event dispatched twice (a crash before the
    -- dispatcher's commit) is delivered once (`ON CONFLICT DO NOTHING`).
    CONSTRAINT webhook_deliveries_endpoint_id_event_id_key UNIQUE (endpoint_id, event_id),
    CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'succeeded', 'failed')),
    CONSTRAINT webhook_deliveries_attempts_check CHECK (attempts >= 0),
    CONSTRAINT webhook_deliveries_duration_ms_check CHECK (duration_ms >= 0),
    CONSTRAINT webhook_deliveries_next_attempt_at_check CHECK (status = 'pending' OR next_attempt_at IS NULL)
);

-- GET /v1/webhook-endpoints/{id}/deliveries: one endpoint's deliveries by id, newest first.
CREATE INDEX webhook_deliveries_endpoint_id_id_idx ON webhook_deliveries (endpoint_id, id);
-- The backlog metric (count and oldest of the pending ones) reads only the pending few, not
-- the whole log.
CREATE INDEX webhook_deliveries_pending_created_at_idx ON webhook_deliveries (created_at) WHERE status = 'pending';

-- How far the dispatcher has read the event feed: the position of the last event dispatched.
-- One row, moved only by a conditional UPDATE (`WHERE position = :from`), so that of two
-- dispatchers (on any instances) reading the same stretch of the feed only one dispatches it.
CREATE TABLE webhook_dispatch (
    id       INTEGER NOT NULL,
    -- NULL: nothing dispatched yet (the feed is read from its start).
    position BIGINT,
    CONSTRAINT webhook_dispatch_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_dispatch_one_row_check CHECK (id = 1),
    CONSTRAINT webhook_dispatch_position_check CHECK (position >= 0)
);

-- The dispatcher starts at the end of the feed as it is now: no endpoint exists yet, and an
-- endpoint is sent only events that occur after it is created, so no earlier event is due to
-- anyone, and a deployment with a long history does not walk through it. (NULL on an empty
-- feed.)
INSERT INTO webhook_dispatch (id, position) SELECT 1, MAX(position) FROM events;

-- The job loops each claim their own kinds (payments; webhook deliveries): each finds its
-- earliest due job by a range scan of its kind, however many jobs of another kind are due.
CREATE INDEX jobs_kind_run_at_idx ON jobs (kind, run_at);
