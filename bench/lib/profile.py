#!/usr/bin/env python3
"""Summarises one `perf record -g` profile of the server by component.

    perf script -i perf-<measurement>.data -F comm,tid,ip,sym,dso | bench/lib/profile.py

Prints, for each component below, the share of samples whose call stack contains it
(inclusive: a sample in `ping` under `r2d2 check-out` counts for both), and the shares by
thread kind and by code (server, libc, kernel). Standard library only.
"""

from __future__ import annotations

import collections
import sys

# (label, substrings of a frame's symbol; any one matches)
COMPONENTS = [
    ("HTTP: actix dispatcher and everything under it", ("h1::dispatcher",)),
    ("HTTP: middleware `metrics::record` and everything inside it", ("middleware::metrics::record",)),
    ("HTTP: route templates recomputed (`HttpRequest::match_pattern`)", ("ResourceMap::_find_matching_node",)),
    ("HTTP: route matching regexes (all callers)", ("regex_lite::",)),
    ("HTTP: root span (`OrderlyRootSpan`)", ("OrderlyRootSpan",)),
    ("HTTP: hand-off to the blocking pool (`web::block`)", ("spawn_blocking", "Spawner::spawn_task")),
    ("HTTP: JSON (serde_json)", ("serde_json::",)),
    ("auth: JWT verification", ("verify_access_token",)),
    ("auth: argon2", ("argon2::",)),
    ("domain + persistence: work on the blocking pool", ("blocking::pool::Inner::run",)),
    ("persistence: pool check-out (`r2d2::Pool::get_timeout`)", ("r2d2::Pool<M>::get_timeout",)),
    ("persistence: check-out ping (`SELECT 1`)", ("R2D2Connection>::ping",)),
    ("persistence: diesel query building (`walk_ast`)", ("walk_ast",)),
    ("persistence: libpq round trips (`PQgetResult`, `PQsendQuery*`)", ("PQgetResult", "PQsendQuery")),
    ("persistence: TLS to PostgreSQL (OpenSSL)", ("SSL_write", "SSL_read", "ssl3_", "tls_")),
    ("persistence: SQLite", ("sqlite3",)),
    ("kernel: context switches (`schedule`)", ("__schedule",)),
    ("kernel: system calls", ("entry_SYSCALL_64",)),
]


def read_samples(stream):
    samples, current = [], None
    for line in stream:
        if not line.strip():
            if current is not None:
                samples.append(current)
            current = None
        elif not line[0].isspace():
            current = (line.split()[0], [])
        elif current is not None:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                current[1].append(parts[1])
    if current is not None:
        samples.append(current)
    return samples


def main() -> int:
    samples = read_samples(sys.stdin)
    if not samples:
        print("no samples")
        return 1
    total = len(samples)
    print(f"{total} samples")
    print()
    print("| component | share of samples (inclusive) |")
    print("|---|---:|")
    for label, needles in COMPONENTS:
        hits = sum(1 for _, frames in samples if any(n in f for f in frames for n in needles))
        print(f"| {label} | {100 * hits / total:.1f} % |")
    print()
    threads = collections.Counter(comm for comm, _ in samples)
    print("threads: " + ", ".join(f"{comm} {100 * n / total:.0f} %" for comm, n in threads.most_common(4)))
    leaf, code = collections.Counter(), collections.Counter()
    for _, frames in samples:
        top = frames[0] if frames else "? (?)"
        leaf[top] += 1
        dso = top.rsplit("(", 1)[-1].rstrip(")") if "(" in top else "?"
        code[dso.rsplit("/", 1)[-1]] += 1
    print("self time by code: " + ", ".join(f"{dso} {100 * n / total:.0f} %" for dso, n in code.most_common(5)))
    print()
    print("hottest leaf functions (self):")
    for symbol, n in leaf.most_common(15):
        print(f"  {100 * n / total:5.1f} %  {symbol[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
