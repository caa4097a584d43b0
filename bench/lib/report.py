#!/usr/bin/env python3
"""Turns one bench run's raw figures into the markdown report (stdout).

Reads from the run directory:
  values.env        KEY=VALUE lines written by bench/run (settings, RSS, pgbench figures)
  <phase>.json      the BENCH_RESULT line of each wrk run (see lua/common.lua)
  seed.json         the seeder's summary
Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIB = 1024  # values are in KiB

# Targets (issue 12; (c)'s p99 from issue 6), all on PostgreSQL on the 2-core machine with the
# load generator on it.
READ_RATIO = 0.50  # single-resource reads (a), (b) vs pgbench -S
PRODUCT_POST_RATIO = 0.40  # POST /v1/products vs the one-row-insert ceiling
ORDER_POST_RATIO = 0.12  # POST /v1/orders vs the one-row-insert ceiling
READ_P99_MS = 10.0  # (a), (b), (c)
BURST_P99_FACTOR = 2.0  # (f): read p99 during a login burst < this × (a)'s p99 in the same run
IDLE_RSS_MIB = 30
PEAK_RSS_MIB = 150


def load_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def ms(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us < 100_000 else f"{us / 1000:.0f} ms"


def rate(x: float) -> str:
    return f"{x:,.0f}"


def mib(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / MIB:.1f} MiB"


class Phase:
    def __init__(self, raw: dict):
        self.raw = raw
        self.rps = raw["requests"] / (raw["duration_us"] / 1e6)
        socket = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
        status = max(raw["unexpected_status"], raw["non_2xx_3xx"])
        self.errors = socket + status
        parts = []
        if status:
            parts.append(", ".join(f"{code}×{n}" for code, n in sorted(raw["bad_statuses"].items())))
        for key, label in (("connect_errors", "connect"), ("read_errors", "read"),
                           ("write_errors", "write"), ("timeouts", "timeout")):
            if raw[key]:
                parts.append(f"{label}×{raw[key]}")
        self.error_text = f"{self.errors} ({'; '.join(parts)})" if parts else "0"
        self.p50, self.p99 = raw["p50_us"], raw["p99_us"]


def main() -> int:
    run = Path(sys.argv[1])
    v = load_values(run / "values.env")
    seed = json.loads((run / "seed.json").read_text()) if (run / "seed.json").exists() else {}
    phases = {p.stem: Phase(json.loads(p.read_text())) for p in run.glob("*.json") if p.stem != "seed"}
    backend = v.get("backend", "?")
    on_pg = backend == "postgres"

    def num(key):
        return float(v[key]) if v.get(key) else None

    def kib(key):
        return int(v[key]) if v.get(key) else None

    select_tps, insert_tps = num("pgbench_select_tps"), num("pgbench_insert_tps")
    out = []
    w = out.append
    w(f"# Orderly benchmark — {backend}, {v.get('date', '?')}")
    w("")
    if v.get("note"):
        w(f"> {v['note']}")
        w("")
    w(f"- commit `{v.get('commit', '?')}`{' (with uncommitted changes)' if v.get('dirty') == '1' else ''};"
      f" machine: {v.get('nproc', '?')} cores, {v.get('cpu', '?')}, {v.get('mem', '?')};"
      f" PostgreSQL {v.get('pg_version', '?')}")
    w(f"- each measurement: {v.get('duration')} s after {v.get('warmup')} s of warm-up, "
      f"{v.get('connections')} connections, {v.get('threads')} wrk threads (`wrk --latency`, closed loop); "
      f"login burst: {v.get('burst_connections')} connections")
    w(f"- server: `{v.get('binary') or 'target/release/orderly'}` on {backend}"
      f"{' (temp file, WAL)' if backend == 'sqlite' else ' (fresh database)'}; "
      f"settings: {v.get('server_settings', '?')}"
      + (f"; client connections to PostgreSQL (Orderly's and pgbench's): TCP, {v['pg_ssl']}" if v.get("pg_ssl") else ""))
    if seed:
        s = seed.get("seconds", {})
        w(f"- data, seeded through the API with {seed.get('concurrency')} connections: "
          f"{seed.get('products')} products ({seed.get('stock_per_product'):,} units each, {s.get('products')} s), "
          f"{seed.get('customers')} customers ({s.get('customers')} s) and their logins ({s.get('logins')} s), "
          f"{seed.get('orders')} orders ({s.get('orders')} s)"
          + (f"; {seed['retried_503']} requests answered 503 and were sent again" if seed.get("retried_503") else ""))
    w("")

    rows = []

    def row(label, phase_key, ratio_of=None, ratio_name="", ratio_target=None, p99_target=None, p99_label=None):
        phase = phases.get(phase_key)
        if phase is None:
            return
        failures, unassessed, targets = [], [], []
        ratio_text = "—"
        if ratio_of:
            ratio = phase.rps / ratio_of
            ratio_text = f"{ratio:.2f} × {ratio_name}"
        if ratio_target is not None:
            targets.append(f"≥ {ratio_target:.2f} × {ratio_name}")
            if not ratio_of:
                unassessed.append(f"no {ratio_name} ceiling in this run")
            elif ratio < ratio_target:
                failures.append(f"ratio {ratio:.3f} < {ratio_target:.2f}")
        if p99_label is not None:
            targets.append(p99_label)
            if p99_target is None:
                unassessed.append("no reference p99 in this run")
        elif p99_target is not None:
            targets.append(f"p99 < {p99_target:g} ms")
        if p99_target is not None and phase.p99 / 1000 >= p99_target:
            failures.append(f"p99 {phase.p99 / 1000:.1f} ms ≥ {p99_target:.1f} ms")
        targets.append("0 errors")
        if phase.errors:
            failures.append(f"{phase.errors} errors")
        if failures:
            verdict = "**FAIL**: " + "; ".join(failures)
            if unassessed:
                verdict += " (not assessed: " + "; ".join(unassessed) + ")"
        elif unassessed:
            verdict = "pass, except not assessed: " + "; ".join(unassessed)
        else:
            verdict = "**pass**"
        hwm = kib(f"hwm_{phase_key}")
        rows.append([label, rate(phase.rps), ms(phase.p50), ms(phase.p99), phase.error_text, ratio_text,
                     mib(hwm), ", ".join(targets), verdict])

    row("(a) `GET /v1/products/{id}` anonymous", "product_get", select_tps, "`-S`", READ_RATIO, READ_P99_MS)
    row("(b) `GET /v1/orders/{id}` as the owner", "order_get", select_tps, "`-S`", READ_RATIO, READ_P99_MS)
    row("(c) `GET /v1/products?limit=20` anonymous", "product_list", select_tps, "`-S`", None, READ_P99_MS)
    row("(d) `POST /v1/orders` + `Idempotency-Key`", "order_post", insert_tps, "insert", ORDER_POST_RATIO)
    row("(g) `POST /v1/products` as the admin", "product_post", insert_tps, "insert", PRODUCT_POST_RATIO)
    row("(e) `POST /v1/auth/tokens` (login)", "login")
    plain = phases.get("product_get")
    burst_limit = BURST_P99_FACTOR * plain.p99 / 1000 if plain else None
    row("(f) `GET /v1/products/{id}` during a login burst", "burst_read", select_tps, "`-S`", None, burst_limit,
        f"p99 < {BURST_P99_FACTOR:g} × (a) p99" + (f" = {burst_limit:.1f} ms" if burst_limit else " (no (a) in this run)"))
    row("(f) … the login burst alongside it", "burst_login")

    for label, key, limit in (("server RSS at idle, after seeding (VmRSS)", "rss_idle", IDLE_RSS_MIB),
                              ("server peak RSS over (a)–(g) (VmHWM)", "rss_peak", PEAK_RSS_MIB)):
        value = kib(key)
        if value is None:
            continue
        verdict = "**pass**" if value <= limit * MIB else f"**FAIL**: {value / MIB:.1f} MiB > {limit} MiB"
        rows.append([label, "", "", "", "", "", mib(value), f"≤ {limit} MiB", verdict])

    header = ["endpoint", "req/s", "p50", "p99", "errors", "ratio", "peak RSS", "target", "result"]
    w("| " + " | ".join(header) + " |")
    w("|" + "|".join(["---"] + ["---:"] * 6 + ["---", "---"]) + "|")
    for r in rows:
        w("| " + " | ".join(r) + " |")
    w("")
    if not on_pg:
        w("Targets are defined on PostgreSQL; on SQLite they are applied for reference only, against the "
          "PostgreSQL ceilings below.")
        w("")
    w("Peak RSS per row is the server's VmHWM over that measurement (reset before each with "
      "`/proc/PID/clear_refs`); errors are non-expected statuses (Lua `response()` hook), socket errors and "
      "timeouts.")
    w("")
    cpu_rows = []
    for key, label in (("product_get", "(a)"), ("order_get", "(b)"), ("product_list", "(c)"),
                       ("order_post", "(d)"), ("product_post", "(g)"), ("login", "(e)"), ("burst", "(f) both")):
        server_ms = num(f"cpu_server_ms_{key}")
        if server_ms is None:
            continue
        parts = [phases[p] for p in (("burst_read", "burst_login") if key == "burst" else (key,)) if p in phases]
        requests = sum(p.raw["requests"] for p in parts)
        if not requests:
            continue
        db_ms = num(f"cpu_db_ms_{key}")
        cpu_rows.append(f"| {label} | {requests:,} | {server_ms / 1000:.1f} s | {server_ms * 1000 / requests:,.0f} µs | "
                        + (f"{db_ms / 1000:.1f} s | {db_ms * 1000 / requests:,.0f} µs |" if db_ms is not None else "— | — |"))
    if cpu_rows:
        w("CPU time per request (user + system, from `/proc`; robust to other load on the machine, unlike req/s):")
        w("")
        w("| measurement | requests | server CPU | server per request | database backends CPU | database per request |")
        w("|---|---:|---:|---:|---:|---:|")
        out.extend(cpu_rows)
        w("")
    ceilings = [(key, label) for key, label in (
        ("select", "`-S` (select only)"),
        ("insert", "one-row insert (`bench/pgbench/one_row_insert.sql`, one row per transaction)"),
        ("tpcb", "TPC-B-like (default script; no target uses it)"),
    ) if v.get(f"pgbench_{key}_tps")]
    if ceilings:
        w("Database ceilings, measured in the same run on a scratch database after the server stopped "
          f"(`-c {v.get('connections')} -j {v.get('threads')} -T {v.get('duration')}`, {v.get('pgbench_protocol')} "
          f"protocol; `-S` and TPC-B-like on `pgbench -i -s {v.get('pgbench_scale')}`):")
        w("")
        w("| pgbench script | tps | latency average | failed |")
        w("|---|---:|---:|---:|")
        for key, label in ceilings:
            w(f"| {label} | {rate(float(v[f'pgbench_{key}_tps']))} | {v.get(f'pgbench_{key}_latency_ms')} ms | "
              f"{v.get(f'pgbench_{key}_failed') or '0'} |")
        w("")
    else:
        w("No database ceiling was measured in this run (`BENCH_ONLY` without `pgbench`, `pgbench_insert`): "
          "no ratio is assessed.")
        w("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
