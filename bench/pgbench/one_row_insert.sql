-- The one-row-insert ceiling (bench/run, `pgbench -n -f`): one row per transaction, one
-- statement in autocommit (a single round trip and a single commit), into a table with a
-- primary key and a few columns, created by bench/run on the scratch database:
--   CREATE TABLE bench_insert (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
--     client integer NOT NULL, amount bigint NOT NULL, label text NOT NULL,
--     created_at timestamptz NOT NULL DEFAULT now())
-- Keys come from a sequence, so they grow like Orderly's time-ordered (UUIDv7) ids.
\set amount random(199, 99999)
INSERT INTO bench_insert (client, amount, label) VALUES (:client_id, :amount, 'bench row');
