//! The API calls the end-to-end tests repeat, and the checks of Orderly's invariants over a
//! [`Snapshot`] of everything the API reports and, where the database is stronger evidence (a
//! half-written order the API might not even show), over the tables themselves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;

use orderly_persistence::testing::{Backend, TestDatabase};
use serde_json::{Value, json};

use super::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Response, request};

/// Order statuses whose reservation has been committed (stock left the shelf, invoice issued).
pub const COMMITTED: [&str; 3] = ["confirmed", "shipped", "delivered"];

/// The response, or a panic that says which call could not even get one.
pub fn answered(response: io::Result<Response>, what: &str) -> Response {
    response.unwrap_or_else(|error| panic!("{what}: no response: {error}"))
}

/// Asserts a problem+json answer with this status and code; returns its body.
pub fn assert_problem(response: &Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status, status, "expected {status} {code}, got {response}");
    assert_eq!(response.header("content-type"), Some("application/problem+json"), "{response}");
    let body = response.json();
    assert_eq!(body["code"], code, "{response}");
    assert_eq!(body["status"], status, "{response}");
    body
}

pub fn login(base: &str, email: &str, password: &str) -> String {
    let body = json!({"email": email, "password": password});
    let response = answered(request("POST", &format!("{base}/v1/auth/tokens")).json(&body).send(), "login");
    assert_eq!(response.status, 200, "login of {email}: {response}");
    response.json()["access_token"].as_str().expect("an access token").to_owned()
}

pub fn admin_token(base: &str) -> String {
    login(base, ADMIN_EMAIL, ADMIN_PASSWORD)
}

pub struct Customer {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// Registers a customer on `base` and logs them in there.
pub fn register_customer(base: &str, email: &str) -> Customer {
    let body = json!({"email": email, "password": PASSWORD, "name": "Test Customer"});
    let response = answered(request("POST", &format!("{base}/v1/users")).json(&body).send(), "registration");
    assert_eq!(response.status, 201, "registration of {email}: {response}");
    let id = response.json()["id"].as_str().expect("a user id").to_owned();
    Customer { id, email: email.to_owned(), token: login(base, email, PASSWORD) }
}

/// Creates an active product; returns its id.
pub fn create_product(base: &str, admin: &str, sku: &str, price: i64, initial_stock: i64) -> String {
    let body = json!({
        "sku": sku,
        "name": format!("Product {sku}"),
        "unit_price": {"amount": price, "currency": "EUR"},
        "initial_stock": initial_stock,
    });
    let response = answered(request("POST", &format!("{base}/v1/products")).bearer(admin).json(&body).send(), sku);
    assert_eq!(response.status, 201, "creating product {sku}: {response}");
    response.json()["id"].as_str().expect("a product id").to_owned()
}

/// `(on_hand, reserved)` of a product, as the API reports it.
pub fn stock(base: &str, product_id: &str) -> (i64, i64) {
    let response = answered(request("GET", &format!("{base}/v1/products/{product_id}")).send(), "product");
    assert_eq!(response.status, 200, "reading product {product_id}: {response}");
    let stock = &response.json()["stock"];
    let (on_hand, reserved) = (integer(&stock["on_hand"]), integer(&stock["reserved"]));
    assert_eq!(integer(&stock["available"]), on_hand - reserved, "available = on_hand - reserved: {response}");
    (on_hand, reserved)
}

pub fn order_request(lines: &[(&str, i64)]) -> Value {
    let items: Vec<Value> =
        lines.iter().map(|(product_id, quantity)| json!({"product_id": product_id, "quantity": quantity})).collect();
    json!({ "items": items })
}

/// `POST /v1/orders` with an optional `Idempotency-Key`.
pub fn place_order(base: &str, token: &str, lines: &[(&str, i64)], key: Option<&str>) -> io::Result<Response> {
    let mut place = request("POST", &format!("{base}/v1/orders")).bearer(token).json(&order_request(lines));
    if let Some(key) = key {
        place = place.header("Idempotency-Key", key);
    }
    place.send()
}

/// `PATCH /v1/orders/{id}` to `status`, with `If-Match` for `version`.
pub fn change_status(base: &str, token: &str, order_id: &str, version: i64, status: &str) -> io::Result<Response> {
    request("PATCH", &format!("{base}/v1/orders/{order_id}"))
        .bearer(token)
        .header("If-Match", &format!("\"{version}\""))
        .json(&json!({ "status": status }))
        .send()
}

/// The id at the end of a `Location` header.
pub fn id_in_location(response: &Response) -> String {
    let location = response.header("location").unwrap_or_else(|| panic!("no Location: {response}"));
    location.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Every item of a collection (`path` may carry a query), walking its pages with `limit=100`.
pub fn collect(base: &str, token: &str, path: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut url = format!("{base}{path}{separator}limit=100");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={}", percent_encode(cursor)));
        }
        let response = answered(request("GET", &url).bearer(token).send(), path);
        assert_eq!(response.status, 200, "GET {url}: {response}");
        let page = response.json();
        items.extend(page["data"].as_array().unwrap_or_else(|| panic!("no data array: {response}")).iter().cloned());
        if page["page"]["has_more"] != true {
            return items;
        }
        cursor = Some(page["page"]["next_cursor"].as_str().expect("has_more comes with a cursor").to_owned());
    }
    panic!("{path} did not end within 10,000 pages");
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

pub fn integer(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("not an integer: {value}"))
}

pub fn amount(money: &Value) -> i64 {
    integer(&money["amount"])
}

pub fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("not a string: {value}"))
}

/// `subtotal × rate` rounded half-to-even to the minor unit (docs/api.md#orders).
pub fn tax_of(subtotal: i64, rate_bps: i64) -> i64 {
    let product = subtotal * rate_bps;
    let (quotient, remainder) = (product / 10_000, product % 10_000);
    match (remainder * 2).cmp(&10_000) {
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal if quotient % 2 == 1 => quotient + 1,
        _ => quotient,
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot and invariants
// ---------------------------------------------------------------------------------------------

/// Everything an admin can read: every order, product, invoice, event (in feed order) and
/// every product's stock audit trail.
pub struct Snapshot {
    pub orders: Vec<Value>,
    pub products: Vec<Value>,
    pub invoices: Vec<Value>,
    pub events: Vec<Value>,
    pub adjustments: HashMap<String, Vec<Value>>,
}

impl Snapshot {
    pub fn read(base: &str, admin: &str) -> Snapshot {
        let orders = collect(base, admin, "/v1/orders");
        let products = collect(base, admin, "/v1/products");
        let invoices = collect(base, admin, "/v1/invoices");
        let events = collect(base, admin, "/v1/events");
        let adjustments = products
            .iter()
            .map(|product| {
                let id = text(&product["id"]).to_owned();
                let trail = collect(base, admin, &format!("/v1/products/{id}/stock-adjustments"));
                (id, trail)
            })
            .collect();
        Snapshot { orders, products, invoices, events, adjustments }
    }

    pub fn order(&self, id: &str) -> Option<&Value> {
        self.orders.iter().find(|order| order["id"] == id)
    }

    pub fn events_of(&self, event_type: &str) -> Vec<&Value> {
        self.events.iter().filter(|event| event["type"] == event_type).collect()
    }

    /// Asserts every invariant below at once; the message lists every violation.
    pub fn assert_invariants(&self, tax_rate_bps: i64) {
        let mut violations = Vec::new();
        self.orders_are_whole(tax_rate_bps, &mut violations);
        self.invoices_match_committed_orders(&mut violations);
        self.stock_matches_orders_and_adjustments(&mut violations);
        self.feed_tells_the_same_story(&mut violations);
        report(&violations, "the API's view");
    }

    /// Every order has its lines, and its totals are the sum of its lines plus the tax.
    fn orders_are_whole(&self, tax_rate_bps: i64, violations: &mut Vec<String>) {
        for order in &self.orders {
            let id = text(&order["id"]);
            let items = order["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            if items.is_empty() {
                violations.push(format!("order {id} has no lines"));
            }
            for item in items {
                if amount(&item["line_total"]) != amount(&item["unit_price"]) * integer(&item["quantity"]) {
                    violations.push(format!("order {id}: line_total ≠ unit_price × quantity in {item}"));
                }
            }
            let subtotal: i64 = items.iter().map(|item| amount(&item["line_total"])).sum();
            let expected = (subtotal, tax_of(subtotal, tax_rate_bps), subtotal + tax_of(subtotal, tax_rate_bps));
            let actual = (amount(&order["subtotal"]), amount(&order["tax"]), amount(&order["total"]));
            if actual != expected {
                violations.push(format!("order {id}: (subtotal, tax, total) is {actual:?}, lines say {expected:?}"));
            }
        }
    }

    /// Every committed order has exactly one invoice and every invoice one committed order;
    /// numbers are unique and gapless from 1 in each year.
    fn invoices_match_committed_orders(&self, violations: &mut Vec<String>) {
        let mut by_number: HashMap<&str, &Value> = HashMap::new();
        for invoice in &self.invoices {
            if by_number.insert(text(&invoice["number"]), invoice).is_some() {
                violations.push(format!("invoice number {} is listed twice", invoice["number"]));
            }
        }
        let mut invoiced_orders = HashSet::new();
        for invoice in &self.invoices {
            let number = text(&invoice["number"]);
            let order_id = text(&invoice["order_id"]);
            if !invoiced_orders.insert(order_id) {
                violations.push(format!("order {order_id} has more than one invoice"));
            }
            match self.order(order_id) {
                None => violations.push(format!("invoice {number} is for order {order_id}, which does not exist")),
                Some(order) => {
                    if !COMMITTED.contains(&text(&order["status"])) || order["invoice_number"] != number {
                        violations.push(format!("invoice {number} is for order {order_id}, which is {order}"));
                    }
                    for field in ["subtotal", "tax", "total"] {
                        if amount(&invoice[field]) != amount(&order[field]) {
                            violations.push(format!("invoice {number}: {field} differs from order {order_id}'s"));
                        }
                    }
                }
            }
        }
        for order in &self.orders {
            let (id, status) = (text(&order["id"]), text(&order["status"]));
            let committed = COMMITTED.contains(&status);
            let has_invoice = order["invoice_number"].as_str().is_some_and(|number| by_number.contains_key(number));
            if committed != has_invoice || (!committed && !order["invoice_number"].is_null()) {
                violations.push(format!(
                    "order {id} is {status} with invoice_number {} (invoice exists: {has_invoice})",
                    order["invoice_number"]
                ));
            }
        }
        let mut sequences: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for number in by_number.keys() {
            match number.split_once('-').and_then(|(year, n)| Some((year, n.parse::<u32>().ok()?))) {
                Some((year, n)) if n > 0 => sequences.entry(year).or_default().push(n),
                _ => violations.push(format!("invoice number {number} is not YYYY-NNNNNN")),
            }
        }
        for (year, mut numbers) in sequences {
            numbers.sort_unstable();
            let expected: Vec<u32> = (1..=u32::try_from(numbers.len()).unwrap_or(u32::MAX)).collect();
            if numbers != expected {
                violations.push(format!("invoice numbers of {year} are not 1..={}: {numbers:?}", expected.len()));
            }
        }
    }

    /// Per product: `reserved` = Σ quantities of pending orders, and `on_hand` = Σ adjustments
    /// (initial stock included) − Σ quantities of committed orders.
    fn stock_matches_orders_and_adjustments(&self, violations: &mut Vec<String>) {
        let mut pending: HashMap<&str, i64> = HashMap::new();
        let mut committed: HashMap<&str, i64> = HashMap::new();
        for order in &self.orders {
            let status = text(&order["status"]);
            for item in order["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let product = text(&item["product_id"]);
                if status == "pending" {
                    *pending.entry(product).or_default() += integer(&item["quantity"]);
                } else if COMMITTED.contains(&status) {
                    *committed.entry(product).or_default() += integer(&item["quantity"]);
                }
            }
        }
        for product in &self.products {
            let id = text(&product["id"]);
            let stock = &product["stock"];
            let (on_hand, reserved) = (integer(&stock["on_hand"]), integer(&stock["reserved"]));
            let adjusted: i64 = self.adjustments.get(id).into_iter().flatten().map(|a| integer(&a["delta"])).sum();
            let expected_reserved = pending.get(id).copied().unwrap_or_default();
            let expected_on_hand = adjusted - committed.get(id).copied().unwrap_or_default();
            if reserved != expected_reserved {
                violations.push(format!("product {id}: reserved {reserved} ≠ {expected_reserved} pending"));
            }
            if on_hand != expected_on_hand {
                violations.push(format!(
                    "product {id}: on_hand {on_hand} ≠ {adjusted} adjusted − {} committed",
                    adjusted - expected_on_hand
                ));
            }
            if reserved < 0 || on_hand < reserved || integer(&stock["available"]) != on_hand - reserved {
                violations.push(format!("product {id}: impossible stock {stock}"));
            }
        }
    }

    /// Every event appears once; every order has exactly one `order.placed` and exactly the
    /// transition events its status implies; every invoice and adjustment exactly one event;
    /// and replaying the feed in its order rebuilds every product's stock, agreeing with each
    /// `stock.adjusted` snapshot on the way and with the products at the end.
    fn feed_tells_the_same_story(&self, violations: &mut Vec<String>) {
        let mut ids = HashSet::new();
        let mut per_subject: HashMap<(&str, &str), usize> = HashMap::new();
        for event in &self.events {
            if !ids.insert(text(&event["id"])) {
                violations.push(format!("event {} appears twice in the feed", event["id"]));
            }
            *per_subject.entry((text(&event["type"]), text(&event["subject"]["id"]))).or_default() += 1;
        }
        let count = |event_type: &'static str, subject: &str| per_subject.get(&(event_type, subject)).copied();
        for order in &self.orders {
            let (id, status) = (text(&order["id"]), text(&order["status"]));
            let expected = [
                ("order.placed", 1),
                ("order.confirmed", usize::from(COMMITTED.contains(&status))),
                ("order.cancelled", usize::from(status == "cancelled")),
            ];
            for (event_type, wanted) in expected {
                let seen = count(event_type, id).unwrap_or_default();
                if seen != wanted {
                    violations.push(format!("{status} order {id} has {seen} {event_type} events, expected {wanted}"));
                }
            }
        }
        for invoice in &self.invoices {
            let number = text(&invoice["number"]);
            if count("invoice.issued", number) != Some(1) {
                violations
                    .push(format!("invoice {number} has {:?} invoice.issued events", count("invoice.issued", number)));
            }
        }
        let adjustment_events: HashMap<&str, usize> =
            self.events_of("stock.adjusted").iter().fold(HashMap::new(), |mut seen, event| {
                *seen.entry(text(&event["data"]["adjustment_id"])).or_default() += 1;
                seen
            });
        let mut trail_ids = HashSet::new();
        for adjustment in self.adjustments.values().flatten() {
            let id = text(&adjustment["id"]);
            trail_ids.insert(id);
            let wanted = usize::from(adjustment["reason"] != "initial stock");
            let seen = adjustment_events.get(id).copied().unwrap_or_default();
            if seen != wanted {
                violations.push(format!("adjustment {id} has {seen} stock.adjusted events, expected {wanted}"));
            }
        }
        for id in adjustment_events.keys().filter(|id| !trail_ids.contains(*id)) {
            violations.push(format!("stock.adjusted names adjustment {id}, which is in no trail"));
        }
        let known_orders: HashSet<&str> = self.orders.iter().map(|order| text(&order["id"])).collect();
        let order_event_types =
            ["order.placed", "order.confirmed", "order.cancelled", "order.shipped", "order.delivered"];
        for event in self.events.iter().filter(|event| order_event_types.contains(&text(&event["type"]))) {
            if !known_orders.contains(text(&event["subject"]["id"])) {
                violations.push(format!("event about an order that does not exist: {event}"));
            }
        }
        self.replay_stock(violations);
    }

    fn replay_stock(&self, violations: &mut Vec<String>) {
        let mut stock: HashMap<String, (i64, i64)> = HashMap::new();
        let mut lines: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for event in &self.events {
            let data = &event["data"];
            let order_lines = || lines.get(text(&data["order_id"])).cloned().unwrap_or_default();
            let mut touched = vec![];
            match text(&event["type"]) {
                "product.created" => {
                    stock.insert(text(&data["product_id"]).to_owned(), (integer(&data["on_hand"]), 0));
                }
                "stock.adjusted" => {
                    let product = text(&data["product_id"]).to_owned();
                    let entry = stock.entry(product.clone()).or_default();
                    entry.0 += integer(&data["delta"]);
                    if *entry != (integer(&data["on_hand"]), integer(&data["reserved"])) {
                        violations.push(format!("replaying the feed gives {entry:?} before {event}"));
                        *entry = (integer(&data["on_hand"]), integer(&data["reserved"]));
                    }
                    touched.push(product);
                }
                "order.placed" => {
                    let placed: Vec<(String, i64)> = data["lines"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(|line| (text(&line["product_id"]).to_owned(), integer(&line["quantity"])))
                        .collect();
                    for (product, quantity) in &placed {
                        stock.entry(product.clone()).or_default().1 += quantity;
                        touched.push(product.clone());
                    }
                    lines.insert(text(&data["order_id"]).to_owned(), placed);
                }
                "order.confirmed" => {
                    for (product, quantity) in order_lines() {
                        let entry = stock.entry(product.clone()).or_default();
                        *entry = (entry.0 - quantity, entry.1 - quantity);
                        touched.push(product);
                    }
                }
                "order.cancelled" => {
                    for (product, quantity) in order_lines() {
                        stock.entry(product.clone()).or_default().1 -= quantity;
                        touched.push(product);
                    }
                }
                _ => {}
            }
            for product in touched {
                let (on_hand, reserved) = stock[&product];
                if reserved < 0 || on_hand < reserved {
                    violations.push(format!("replaying the feed, product {product} reaches {on_hand} on hand, {reserved} reserved at {event}"));
                }
            }
        }
        for product in &self.products {
            let id = text(&product["id"]);
            let actual = (integer(&product["stock"]["on_hand"]), integer(&product["stock"]["reserved"]));
            let replayed = stock.get(id).copied().unwrap_or_default();
            if actual != replayed {
                violations.push(format!("product {id}: stock is {actual:?}, replaying the feed gives {replayed:?}"));
            }
        }
    }
}

/// The invariants again, straight from the tables: what a half-written transaction would leave
/// behind even where the API would not show it. Valid SQL on PostgreSQL and SQLite.
pub fn assert_database_invariants(db: &TestDatabase) {
    const COMMITTED_SQL: &str = "('confirmed', 'shipped', 'delivered')";
    let checks: Vec<(&str, String)> = vec![
        (
            "orders without lines",
            "orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)".into(),
        ),
        (
            "orders whose subtotal is not the sum of their lines",
            "orders o WHERE o.subtotal <> (SELECT COALESCE(SUM(l.line_total_amount), 0) FROM order_lines l \
             WHERE l.order_id = o.id)"
                .into(),
        ),
        ("orders whose total is not subtotal + tax", "orders o WHERE o.total <> o.subtotal + o.tax".into()),
        (
            "products whose reserved is not the sum of pending quantities",
            "products p WHERE p.reserved <> (SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l \
             JOIN orders o ON o.id = l.order_id WHERE o.status = 'pending' AND l.product_id = p.id)"
                .into(),
        ),
        (
            "products whose on_hand is not adjustments minus committed quantities",
            format!(
                "products p WHERE p.on_hand <> (SELECT COALESCE(SUM(a.delta), 0) FROM stock_adjustments a \
                 WHERE a.product_id = p.id) - (SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l \
                 JOIN orders o ON o.id = l.order_id WHERE o.status IN {COMMITTED_SQL} AND l.product_id = p.id)"
            ),
        ),
        ("products with impossible stock", "products p WHERE p.reserved < 0 OR p.on_hand < p.reserved".into()),
        (
            "committed orders without exactly one matching invoice",
            format!(
                "orders o WHERE o.status IN {COMMITTED_SQL} AND (o.invoice_number IS NULL OR (SELECT COUNT(*) \
                 FROM invoices i WHERE i.order_id = o.id AND i.number = o.invoice_number) <> 1)"
            ),
        ),
        (
            "uncommitted orders with an invoice or invoice number",
            format!(
                "orders o WHERE o.status NOT IN {COMMITTED_SQL} AND (o.invoice_number IS NOT NULL OR EXISTS \
                 (SELECT 1 FROM invoices i WHERE i.order_id = o.id))"
            ),
        ),
        (
            "invoices that do not match their order",
            "invoices i WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = i.order_id AND \
             o.invoice_number = i.number AND o.subtotal = i.subtotal AND o.tax = i.tax AND o.total = i.total)"
                .into(),
        ),
        (
            "invoice counters that disagree with the number of invoices of their year",
            "invoice_counters c WHERE c.last_number <> (SELECT COUNT(*) FROM invoices i \
             WHERE substr(i.number, 1, 4) = CAST(c.year AS TEXT))"
                .into(),
        ),
        (
            "invoices of a year that has no counter",
            "invoices i WHERE NOT EXISTS (SELECT 1 FROM invoice_counters c \
             WHERE CAST(c.year AS TEXT) = substr(i.number, 1, 4))"
                .into(),
        ),
        (
            "orders without exactly one order.placed event",
            "orders o WHERE (SELECT COUNT(*) FROM events e WHERE e.type = 'order.placed' AND e.subject_id = o.id) <> 1"
                .into(),
        ),
    ];
    let mut violations = Vec::new();
    for (what, from_where) in checks {
        // `count_rows` takes trusted test SQL: a table, or here a table with a condition.
        let found = db.count_rows(&from_where);
        if found != 0 {
            violations.push(format!("{found} {what}"));
        }
    }
    match db.backend() {
        // One counter, in commit order: positions are exactly 1, 2, 3, ...
        Backend::Sqlite => {
            let (events, last_position) = (db.count_rows("events"), db.last_event_position());
            let outside = db.count_rows(&format!("events WHERE position < 1 OR position > {last_position}"));
            if events != last_position || outside != 0 {
                violations.push(format!(
                    "event positions are not exactly 1..={last_position}: {events} events, {outside} outside that range"
                ));
            }
        }
        // A block of 1024 from the sequence per batch of events, then 1, 2, ... (ADR 0012).
        Backend::Postgres => {
            let misplaced = db.count_rows("events WHERE position < 1024 OR position % 1024 = 0");
            let orphans = db.count_rows(
                "events e WHERE e.position % 1024 > 1 AND NOT EXISTS \
                 (SELECT 1 FROM events p WHERE p.position = e.position - 1)",
            );
            if misplaced != 0 || orphans != 0 {
                violations.push(format!(
                    "event positions are not a block of 1024 plus 1, 2, ...: {misplaced} misplaced, \
                     {orphans} without their predecessor"
                ));
            }
        }
    }
    report(&violations, "the database");
}

fn report(violations: &[String], seen_in: &str) {
    if violations.is_empty() {
        return;
    }
    let shown: Vec<&str> = violations.iter().take(40).map(String::as_str).collect();
    panic!("{} invariant violations in {seen_in}:\n  - {}", violations.len(), shown.join("\n  - "));
}
