-- The catalogue: products with their stock counters, and the stock audit trail.
--
-- Same portable types as the first migration: ids are TEXT holding hyphenated lower-case
-- UUIDs, times are TIMESTAMP holding UTC. Ids and names use the "C" collation so that ordering
-- is byte order whatever the database's locale, exactly as SQLite's default BINARY collation
-- orders them: a catalogue walk sorted by name returns the same order on both backends, and
-- keyset pagination compares in the same order as the index.

CREATE TABLE products (
    id                TEXT COLLATE "C" NOT NULL,
    sku               TEXT NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    -- `name` lower-cased by the adapter (in Rust, the same on both backends: SQLite's lower()
    -- folds ASCII only), for the case-insensitive `q` filter.
    name_folded       TEXT NOT NULL,
    description       TEXT,
    -- Minor units of `currency`.
    unit_price_amount BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    on_hand           BIGINT NOT NULL,
    -- Units promised to pending orders; `available` = on_hand - reserved is never stored.
    reserved          BIGINT NOT NULL DEFAULT 0,
    status            TEXT NOT NULL,
    version           BIGINT NOT NULL DEFAULT 1,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    CONSTRAINT products_pkey PRIMARY KEY (id),
    -- The adapter recognises this name to answer "SKU taken" instead of failing.
    CONSTRAINT products_sku_key UNIQUE (sku),
    CONSTRAINT products_status_check CHECK (status IN ('active', 'archived')),
    CONSTRAINT products_unit_price_amount_check CHECK (unit_price_amount >= 0),
    -- The domain's rule 0 <= reserved <= on_hand, as a last line of defence: the adapter's
    -- conditional UPDATEs already keep it, so a violation here is a bug, never a race.
    CONSTRAINT products_stock_check CHECK (reserved >= 0 AND on_hand >= reserved),
    CONSTRAINT products_version_check CHECK (version >= 1)
);

-- GET /v1/products pages by (sort key, id) in either direction, for each of the three sort
-- keys: with a status filter (everyone but admins, and admins who ask for one) ...
CREATE INDEX products_status_created_at_id_idx ON products (status, created_at, id);
CREATE INDEX products_status_name_id_idx ON products (status, name, id);
CREATE INDEX products_status_unit_price_amount_id_idx ON products (status, unit_price_amount, id);
-- ... and without one (admins listing every status).
CREATE INDEX products_created_at_id_idx ON products (created_at, id);
CREATE INDEX products_name_id_idx ON products (name, id);
CREATE INDEX products_unit_price_amount_id_idx ON products (unit_price_amount, id);

-- Every change of on_hand, with who made it and why. Never updated or deleted.
CREATE TABLE stock_adjustments (
    -- UUIDv7: orders by creation time, which is the trail's order (newest first).
    id            TEXT COLLATE "C" NOT NULL,
    product_id    TEXT COLLATE "C" NOT NULL,
    delta         BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    actor_id      TEXT COLLATE "C" NOT NULL,
    on_hand_after BIGINT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    CONSTRAINT stock_adjustments_pkey PRIMARY KEY (id),
    CONSTRAINT stock_adjustments_product_id_fkey FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT stock_adjustments_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES users (id),
    CONSTRAINT stock_adjustments_delta_check CHECK (delta <> 0),
    CONSTRAINT stock_adjustments_on_hand_after_check CHECK (on_hand_after >= 0)
);

-- GET /v1/products/{id}/stock-adjustments: one product's trail by id, newest first.
CREATE INDEX stock_adjustments_product_id_id_idx ON stock_adjustments (product_id, id);
