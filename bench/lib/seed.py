#!/usr/bin/env python3
"""Seeds a running Orderly through its public API (the real code path) and writes the files
the wrk scripts read.

What it creates, in this order, each step with `--concurrency` keep-alive connections:
  1. products (admin `POST /v1/products`), each with `--stock` units of initial stock;
  2. customers (`POST /v1/users`: one argon2 hash each);
  3. a login per customer (`POST /v1/auth/tokens`: one argon2 verification each);
  4. orders (`POST /v1/orders` with an `Idempotency-Key`, by a random customer, 1–4 distinct
     random products, quantity 1–3): spread uniformly over customers and products.

Files written to `--out`:
  admin_token.txt  the admin's access token (for `POST /v1/products`)
  products.txt  one product id a line
  tokens.txt    one customer access token a line
  orders.txt    "<owner's access token> <order id>" a line
  logins.txt    one login body (JSON) a line
  seed.json     counts and how long each step took

Standard library only (Python 3.11). Any unexpected status stops the seeding with the answer;
a 503 (the server asks to come back later, e.g. its password-hash queue was full on a busy
machine) is sent again after half a second, up to 20 times, and counted in seed.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ADJECTIVES = ["Enamel", "Oak", "Linen", "Copper", "Glass", "Wool", "Steel", "Ceramic", "Bamboo", "Leather"]
NOUNS = ["mug", "chair", "lamp", "bowl", "notebook", "kettle", "blanket", "vase", "tray", "backpack"]


class SeedError(Exception):
    pass


# How often one request is sent again after a 503 before the seeding gives up.
BUSY_RETRIES = 20


class Api:
    """One keep-alive connection per worker thread."""

    def __init__(self, base_url: str) -> None:
        rest = base_url.removeprefix("http://").rstrip("/")
        host, _, port = rest.partition(":")
        self.host, self.port = host, int(port or 80)
        self.local = threading.local()
        self.lock = threading.Lock()
        self.retried_503 = 0

    def call(self, method: str, path: str, body=None, token: str | None = None,
             headers: dict | None = None, expect: int = 200):
        payload = None if body is None else json.dumps(body)
        sent_headers = {"Content-Type": "application/json"} if payload is not None else {}
        if token:
            sent_headers["Authorization"] = f"Bearer {token}"
        sent_headers.update(headers or {})
        for busy in range(BUSY_RETRIES + 1):
            status, data = self._send(method, path, payload, sent_headers)
            # A 503 is the server asking to come back later (e.g. the password-hash queue was
            # full on a busy machine), having done nothing (an order, had it been committed
            # after all, is replayed for its Idempotency-Key): the same request goes again.
            if status != 503 or busy == BUSY_RETRIES:
                break
            with self.lock:
                self.retried_503 += 1
            time.sleep(0.5)
        if status != expect:
            raise SeedError(f"{method} {path} answered {status}, expected {expect}: {data[:400]!r}")
        return json.loads(data) if data else None

    def _send(self, method: str, path: str, payload, sent_headers: dict) -> tuple[int, bytes]:
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                conn.request(method, path, body=payload, headers=sent_headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError) as error:
                # A dropped connection: reconnect and resend. Safe for POSTs here because every
                # non-idempotent one carries an Idempotency-Key (or is a login/registration that
                # fails loudly on a duplicate).
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise SeedError(f"{method} {path}: {error}") from error
                time.sleep(0.2)
        raise SeedError(f"{method} {path}: no answer")


def parallel(concurrency: int, work, items, label: str):
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(work, items))
    elapsed = time.monotonic() - started
    print(f"  {label}: {len(results)} in {elapsed:.1f} s ({len(results) / max(elapsed, 1e-9):.0f}/s)", flush=True)
    return results, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=10000)
    parser.add_argument("--stock", type=int, default=1_000_000, help="initial stock of every product")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--currency", default="EUR")
    parser.add_argument("--seed", type=int, default=20261124, help="random seed (data shape, not ids)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    api = Api(args.base_url)
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    admin = api.call("POST", "/v1/auth/tokens", {"email": args.admin_email, "password": args.admin_password})
    admin_token = admin["access_token"]

    product_bodies = [
        {
            "sku": f"BENCH-{i:06d}",
            "name": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i}",
            "description": f"Seeded for the benchmark; item {i} of {args.products}.",
            "unit_price": {"amount": rng.randint(199, 99_999), "currency": args.currency},
            "initial_stock": args.stock,
        }
        for i in range(1, args.products + 1)
    ]
    products, timings["products"] = parallel(
        args.concurrency,
        lambda body: api.call("POST", "/v1/products", body, token=admin_token, expect=201)["id"],
        product_bodies,
        "products",
    )

    credentials = [
        {"email": f"customer{i:05d}@bench.example", "password": f"bench-password-{i:05d}", "name": f"Customer {i}"}
        for i in range(1, args.customers + 1)
    ]
    _, timings["customers"] = parallel(
        args.concurrency, lambda body: api.call("POST", "/v1/users", body, expect=201), credentials, "customers"
    )
    logins = [{"email": c["email"], "password": c["password"]} for c in credentials]
    tokens, timings["logins"] = parallel(
        args.concurrency,
        lambda body: api.call("POST", "/v1/auth/tokens", body)["access_token"],
        logins,
        "customer logins",
    )

    order_plans = []
    for n in range(args.orders):
        customer = rng.randrange(len(tokens))
        lines = rng.sample(products, rng.randint(1, 4))
        order_plans.append((n, customer, [{"product_id": p, "quantity": rng.randint(1, 3)} for p in lines]))

    def place(plan):
        n, customer, items = plan
        order = api.call(
            "POST",
            "/v1/orders",
            {"items": items},
            token=tokens[customer],
            headers={"Idempotency-Key": f"seed-{args.seed}-{n}"},
            expect=201,
        )
        return customer, order["id"]

    orders, timings["orders"] = parallel(args.concurrency, place, order_plans, "orders")

    (args.out / "admin_token.txt").write_text(f"{admin_token}\n")
    (args.out / "products.txt").write_text("".join(f"{p}\n" for p in products))
    (args.out / "tokens.txt").write_text("".join(f"{t}\n" for t in tokens))
    (args.out / "orders.txt").write_text("".join(f"{tokens[c]} {o}\n" for c, o in orders))
    (args.out / "logins.txt").write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in logins))
    summary = {
        "products": len(products),
        "customers": len(tokens),
        "orders": len(orders),
        "stock_per_product": args.stock,
        "concurrency": args.concurrency,
        "retried_503": api.retried_503,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (args.out / "seed.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SeedError as error:
        print(f"seeding failed: {error}", file=sys.stderr)
        sys.exit(1)
