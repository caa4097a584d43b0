-- Users, refresh-token families and tokens, and the event outbox.
--
-- Portable types, the same on both backends (see crates/persistence/src/schema.rs): ids are
-- TEXT holding hyphenated lower-case UUIDs, times are TIMESTAMP holding UTC (diesel writes
-- them as 'YYYY-MM-DD HH:MM:SS.ffffff' text, which sorts in time order), JSON is TEXT.
-- SQLite compares TEXT bytewise by default, so ids sort in byte order as on PostgreSQL.
-- A TEXT primary key may hold NULL in SQLite unless it says NOT NULL.

CREATE TABLE users (
    id            TEXT NOT NULL,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    -- The adapter recognises this constraint to answer "email taken" instead of failing.
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_role_check CHECK (role IN ('customer', 'admin')),
    CONSTRAINT users_active_check CHECK (active IN (0, 1)),
    CONSTRAINT users_version_check CHECK (version >= 1)
);

-- GET /v1/users pages by (created_at, id) in either direction.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
-- The same order within the role/active filters.
CREATE INDEX users_role_active_created_at_id_idx ON users (role, active, created_at, id);

CREATE TABLE refresh_token_families (
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- Set once: logout, reuse of a spent token, password change or deactivation.
    revoked_at TIMESTAMP,
    CONSTRAINT refresh_token_families_pkey PRIMARY KEY (id),
    CONSTRAINT refresh_token_families_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

-- Revoking every session of a user.
CREATE INDEX refresh_token_families_user_id_idx ON refresh_token_families (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    id         TEXT NOT NULL,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    -- A digest of the token; the token itself is never stored.
    token_hash TEXT NOT NULL,
    issued_at  TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    spent_at   TIMESTAMP,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_family_id_fkey FOREIGN KEY (family_id)
        REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    CONSTRAINT refresh_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);

-- The transactional outbox: every state change writes its event in the same transaction.
CREATE TABLE events (
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    -- A JSON object.
    data         TEXT NOT NULL,
    occurred_at  TIMESTAMP NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (id)
);

CREATE INDEX events_subject_idx ON events (subject_type, subject_id);
