#!/usr/bin/env bash
# Installs the system packages Quiver's build needs, only if they are missing, on Debian/Ubuntu.
# The Rust toolchain itself is expected (rustup); everything else comes from crates.io (protoc
# and the well-known .proto files too: protoc-bin-vendored).
set -euo pipefail

missing=()
command -v make >/dev/null || missing+=(make)
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
# bindgen (RocksDB bindings) needs libclang.
command -v clang >/dev/null || missing+=(clang)
[ -n "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ] || missing+=(libclang-dev)
# The online store links Debian's RocksDB instead of compiling it (.cargo/config.toml).
[ -e /usr/include/rocksdb/c.h ] || missing+=(librocksdb-dev)
# The offline store's S3 client uses the system's OpenSSL for TLS.
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# Kafka sources: rdkafka-sys compiles librdkafka with its configure script and make (zlib from
# the system; TLS and SASL/SCRAM from OpenSSL above).
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
command -v perl >/dev/null || missing+=(perl)
# The fault tests (tests/src/netns.rs) cut links between network namespaces with nftables.
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing+=(nftables)
# The offline tests' Python environment (scripts/python-env.sh).
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3 python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
command -v cargo >/dev/null || { echo "install Rust first: https://rustup.rs" >&2; exit 1; }
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "==> installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
