# syntax=docker/dockerfile:1
# Orderly's image: `docker build -t orderly .` (or `docker compose up --build`).

# ---- Build: a release binary with SQLite, libpq and OpenSSL compiled in, so the runtime
# image needs no database client libraries. The cache mounts keep the registry and target
# directory between builds (a clean release build takes ~4 minutes on 2 cores).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin orderly \
 && cp target/release/orderly /usr/local/bin/orderly

# ---- Run: a slim Debian (glibc, CA certificates for `sslmode=require`), curl for the health
# check, and a non-root user that owns nothing but its working directory.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/orderly --create-home --shell /usr/sbin/nologin orderly
COPY --from=build /usr/local/bin/orderly /usr/local/bin/orderly
USER 10001:10001
WORKDIR /var/lib/orderly
# Production defaults; everything else comes from the environment (see README).
ENV ORDERLY_BIND=0.0.0.0:8080 \
    ORDERLY_ENV=production \
    ORDERLY_LOG_FORMAT=json
EXPOSE 8080
# Liveness only: /healthz answers while the process serves, whatever the database does, so a
# database outage does not get every instance restarted. Readiness (/readyz) is for the proxy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM (docker stop) drains in-flight requests; allow ORDERLY_SHUTDOWN_TIMEOUT for it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/orderly"]
CMD ["serve"]
