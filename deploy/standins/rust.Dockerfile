# Stand-in for rust:1-slim-bookworm: the machine's own toolchain on the
# Debian stand-in, trusting the machine's certificate authorities (cargo
# fetches crates through them).
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY toolchain /usr/local/rust
ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:$PATH \
    CARGO_HOME=/usr/local/cargo \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt
