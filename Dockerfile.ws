# The WebSocket gateway, with the `tidings` admin CLI beside it
# (`docker compose exec ws1 tidings user passwd admin`).
# Build: docker build -f Dockerfile.ws -t tidings-ws .
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# Small images: no symbols, no debug info.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=false
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ws-gateway --bin ws-gateway -p tidings --bin tidings \
    && cp target/release/ws-gateway target/release/tidings /usr/local/bin/

FROM debian:bookworm-slim
# Versions come from the pinned base image's Debian release; pinning each
# package too would break on every Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home tidings
COPY --from=build /usr/local/bin/ws-gateway /usr/local/bin/tidings /usr/local/bin/
USER 10001
ENV TIDINGS_WS_ADDR=0.0.0.0:5000 LOG_FORMAT=json
EXPOSE 5000
# Shell form for `|| exit 1`: Docker reads any exit code but 0 and 1 as
# reserved, and curl -f fails with 22.
# hadolint ignore=DL3025
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:5000/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/ws-gateway"]
