-- The per-customer reservation cap (docs/api.md#orders): placing an order sums the quantities of the
-- customer's pending orders, under the customer's row lock, on every placement. This partial
-- index holds only pending orders (few per customer: each holds at least one unit, and the cap
-- bounds the units), so the sum reads them without scanning the customer's history; `id` is in
-- the key so the join to `order_lines` (by its primary key) needs nothing else from `orders`.
CREATE INDEX orders_pending_by_customer_idx ON orders (customer_id, id) WHERE status = 'pending';
