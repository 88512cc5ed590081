# The WebSocket gateway. Build: docker build -f Dockerfile.ws -t tidings-ws .
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ws-gateway --bin ws-gateway \
    && cp target/release/ws-gateway /usr/local/bin/ws-gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home tidings
COPY --from=build /usr/local/bin/ws-gateway /usr/local/bin/ws-gateway
USER tidings
ENV TIDINGS_WS_ADDR=0.0.0.0:5000 LOG_FORMAT=json
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:5000/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/ws-gateway"]
