-- Orders with their snapshotted lines, invoices, and the per-year invoice counter.
--
-- Same portable types as the earlier migrations: ids are TEXT holding hyphenated lower-case
-- UUIDs, times are TIMESTAMP holding UTC, money is BIGINT minor units. Keys used for ordering
-- use the "C" collation so that ordering is byte order, as SQLite's default BINARY collation
-- orders them: keyset pagination compares in the same order as the index on both backends.

CREATE TABLE orders (
    id             TEXT COLLATE "C" NOT NULL,
    customer_id    TEXT COLLATE "C" NOT NULL,
    status         TEXT NOT NULL,
    -- Minor units of `currency`, computed by the domain at placement and never changed.
    subtotal       BIGINT NOT NULL,
    tax            BIGINT NOT NULL,
    total          BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    -- `YYYY-NNNNNN`, set in the confirming transaction together with the invoice.
    invoice_number TEXT COLLATE "C",
    version        BIGINT NOT NULL DEFAULT 1,
    placed_at      TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    -- When the reservation of a pending order lapses; NULL once it has left pending.
    expires_at     TIMESTAMP,
    CONSTRAINT orders_pkey PRIMARY KEY (id),
    CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES users (id),
    CONSTRAINT orders_invoice_number_key UNIQUE (invoice_number),
    CONSTRAINT orders_status_check CHECK (status IN ('pending', 'confirmed', 'cancelled', 'shipped', 'delivered')),
    CONSTRAINT orders_money_check CHECK (subtotal >= 0 AND tax >= 0 AND total = subtotal + tax),
    CONSTRAINT orders_version_check CHECK (version >= 1)
);

-- GET /v1/orders pages by (placed_at, id) in either direction: a customer's own orders ...
CREATE INDEX orders_customer_id_placed_at_id_idx ON orders (customer_id, placed_at, id);
-- ... every order (admins) ...
CREATE INDEX orders_placed_at_id_idx ON orders (placed_at, id);
-- ... and every order of one status.
CREATE INDEX orders_status_placed_at_id_idx ON orders (status, placed_at, id);
-- The reservation-expiry sweep: pending orders by expiry.
CREATE INDEX orders_status_expires_at_idx ON orders (status, expires_at);

-- The lines as placed: product, name and price are a snapshot, never updated.
CREATE TABLE order_lines (
    order_id          TEXT COLLATE "C" NOT NULL,
    -- The line's index in the request (0-based), which is its position in the order.
    line_no           INTEGER NOT NULL,
    product_id        TEXT COLLATE "C" NOT NULL,
    sku               TEXT NOT NULL,
    name              TEXT NOT NULL,
    quantity          BIGINT NOT NULL,
    unit_price_amount BIGINT NOT NULL,
    line_total_amount BIGINT NOT NULL,
    CONSTRAINT order_lines_pkey PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_lines_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
    CONSTRAINT order_lines_product_id_fkey FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT order_lines_product_key UNIQUE (order_id, product_id),
    CONSTRAINT order_lines_line_no_check CHECK (line_no >= 0),
    CONSTRAINT order_lines_quantity_check CHECK (quantity BETWEEN 1 AND 1000),
    CONSTRAINT order_lines_amounts_check CHECK (unit_price_amount >= 0 AND line_total_amount = unit_price_amount * quantity)
);

CREATE INDEX order_lines_product_id_idx ON order_lines (product_id);

-- Issued invoices. Immutable: never updated or deleted. The lines are the order's lines.
CREATE TABLE invoices (
    -- `YYYY-NNNNNN`: fixed width, so text order is (year, sequence) order, i.e. issue order.
    number      TEXT COLLATE "C" NOT NULL,
    order_id    TEXT COLLATE "C" NOT NULL,
    customer_id TEXT COLLATE "C" NOT NULL,
    issued_at   TIMESTAMP NOT NULL,
    subtotal    BIGINT NOT NULL,
    tax         BIGINT NOT NULL,
    total       BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    CONSTRAINT invoices_pkey PRIMARY KEY (number),
    CONSTRAINT invoices_order_id_key UNIQUE (order_id),
    CONSTRAINT invoices_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT invoices_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES users (id),
    CONSTRAINT invoices_number_check CHECK (number ~ '^[0-9]{4}-[0-9]{6}$')
);

-- GET /v1/invoices for one customer, newest (highest number) first.
CREATE INDEX invoices_customer_id_number_idx ON invoices (customer_id, number);

-- One row per calendar year: the last invoice number handed out. Confirmations increment it
-- with `INSERT ... ON CONFLICT (year) DO UPDATE ... RETURNING` in their own transaction, so the
-- row lock serialises them, a rolled-back confirmation gives its number back (no gaps), and no
-- two get the same number, on any number of instances. Deliberately not a sequence: sequences
-- are not transactional and would leave gaps.
CREATE TABLE invoice_counters (
    year        INTEGER NOT NULL,
    last_number BIGINT NOT NULL,
    CONSTRAINT invoice_counters_pkey PRIMARY KEY (year),
    CONSTRAINT invoice_counters_last_number_check CHECK (last_number BETWEEN 1 AND 999999)
);
