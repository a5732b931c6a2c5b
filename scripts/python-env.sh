#!/usr/bin/env bash
# The pinned Python environment of the tests: pyarrow (the trainer's side of Arrow Flight),
# pytest, moto's S3-compatible server (offline tests), and the Python client's dependencies
# (clients/python: grpcio, protobuf, pandas, numpy; grpcio-tools generates its code; setuptools
# builds its wheel). Pinned, in a venv under $QUIVER_TOOLS_DIR named by a hash of the pins, so
# changing a pin makes a new venv; created only when missing. Prints the venv's bin directory.
set -euo pipefail

PINS=(
  "pyarrow==22.0.0"
  "pytest==8.4.2"
  "moto[server]==5.1.16"
  "grpcio==1.85.4"
  "grpcio-tools==1.85.4"
  "protobuf==7.36.2"
  "numpy==2.4.6"
  "pandas==3.1.1"
  "setuptools==84.2.1"
)

TOOLS="${QUIVER_TOOLS_DIR:-$HOME/.cache/quiver-tools}"
PINS_HASH="$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"
VENV="$TOOLS/venv-$PINS_HASH"

mkdir -p "$TOOLS"
# Test binaries may ask at the same time: one creates, the others wait.
exec 9>"$TOOLS/.python-env.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
  command -v python3 >/dev/null || { echo "python3 is needed (apt-get install python3 python3-venv)" >&2; exit 1; }
  if ! python3 -m venv --help >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" >&2
  touch "$VENV/.complete"
fi
echo "$VENV/bin"
