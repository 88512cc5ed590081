# Stand-in for redis:7: Debian's Redis, reachable from other containers
# as in the official image (no protected mode).
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && printf '#!/bin/sh\nexec /usr/bin/redis-server "$@" --bind 0.0.0.0 --protected-mode no\n' \
       > /usr/local/bin/redis-server \
    && chmod +x /usr/local/bin/redis-server
CMD ["redis-server"]
