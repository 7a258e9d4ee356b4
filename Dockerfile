# syntax=docker/dockerfile:1
# One image for every petbooks subcommand: the compose services pick serve, grpc, migrate or seed.

FROM oven/bun:1.4 AS build
WORKDIR /src
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile
COPY . .
# No .git in the build context: the commit petbooks_build_info reports comes from here
# (docker build --build-arg PETBOOKS_COMMIT=$(git rev-parse --short=12 HEAD) .).
ARG PETBOOKS_COMMIT=unknown
RUN PETBOOKS_COMMIT=$PETBOOKS_COMMIT bun run build && ./petbooks --version

FROM debian:bookworm-slim AS runtime
# The compiled binary needs only glibc; ca-certificates for TLS to managed services.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home petbooks \
 && mkdir -p /data \
 && chown petbooks:petbooks /data
COPY --from=build /src/petbooks /usr/local/bin/petbooks
USER petbooks:petbooks
WORKDIR /data
ENV DATA_DIR=/data HOST=0.0.0.0 PORT=3000 GRPC_PORT=50051
# Bun's allocator (mimalloc) keeps the pages it frees instead of handing them back to the kernel
# and faulting them in again moments later: about a quarter of serve's CPU per request under
# load, and a faster export-pets, for 10 to 25 MB more RSS (docs/operations.md#memory-allocator).
ENV MIMALLOC_PURGE_DELAY=-1
EXPOSE 3000 50051
VOLUME ["/data"]
# serve's readiness; the grpc service overrides it with `petbooks healthcheck --grpc`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["petbooks", "healthcheck"]
ENTRYPOINT ["petbooks"]
CMD ["serve"]
