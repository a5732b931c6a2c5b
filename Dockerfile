# syntax=docker/dockerfile:1
# One image for every Quiver role: `quiver serve <role>`, `quiver dev` and the CLI.

# ---- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder
# protoc for tonic/prost code generation; clang + libclang for bindgen; librocksdb-dev: the online
# store links Debian's RocksDB (see .cargo/config.toml) instead of compiling it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler clang libclang-dev librocksdb-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: the image must build exactly what Cargo.lock says, never re-resolve.
# BuildKit cache mounts keep the crate downloads and compiled dependencies between builds; target/ lives in the cache, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p quiver \
 && install -Dm755 target/release/quiver /out/quiver

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to https endpoints. librocksdb7.8: the RocksDB the binary links.
# The Helm chart's start, preStop and readiness scripts (online-store voters and read replicas) run
# /bin/sh with date, timeout, sed, grep and tr from the base image: keep a shell and coreutils
# here (no distroless/scratch base) or change charts/quiver/templates/online-store-*.yaml with it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates librocksdb7.8 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 quiver \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/quiver --shell /usr/sbin/nologin quiver \
 && install -d -o quiver -g quiver -m 0750 /var/lib/quiver
COPY --from=builder /out/quiver /usr/local/bin/quiver
# Numeric user so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/quiver
# 7070: gRPC (all roles, grpc.health.v1); 9090: HTTP /metrics and /healthz.
EXPOSE 7070 9090
ENTRYPOINT ["quiver"]
CMD ["--help"]
