# syntax=docker/dockerfile:1
# Build: a release binary with SQLite, libpq and OpenSSL compiled in (no system libraries needed).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin orderly \
 && cp target/release/orderly /usr/local/bin/orderly

# Run: a small image, a non-root user, a health check on /healthz.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/orderly --create-home orderly
COPY --from=build /usr/local/bin/orderly /usr/local/bin/orderly
USER orderly
WORKDIR /var/lib/orderly
ENV ORDERLY_BIND=0.0.0.0:8080 \
    ORDERLY_ENV=production \
    ORDERLY_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/orderly"]
CMD ["serve"]
