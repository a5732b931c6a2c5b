#!/usr/bin/env bash
# The Python environment the offline tests use: pyarrow (the trainer's side of Arrow Flight),
# pytest, and moto's S3-compatible server. Pinned, in a venv under $QUIVER_TOOLS_DIR, created
# only when missing. Prints the venv's bin directory.
set -euo pipefail

PYARROW_VERSION="22.0.0"
PYTEST_VERSION="8.4.2"
MOTO_VERSION="5.1.16"

TOOLS="${QUIVER_TOOLS_DIR:-$HOME/.cache/quiver-tools}"
VENV="$TOOLS/venv-offline-pa$PYARROW_VERSION-moto$MOTO_VERSION"

mkdir -p "$TOOLS"
# Test binaries may ask at the same time: one creates, the others wait.
exec 9>"$TOOLS/.python-env.lock"
flock 9
if [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/pytest" ]; then
  command -v python3 >/dev/null || { echo "python3 is needed (apt-get install python3 python3-venv)" >&2; exit 1; }
  if ! python3 -m venv --help >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "pyarrow==$PYARROW_VERSION" "pytest==$PYTEST_VERSION" "moto[server]==$MOTO_VERSION" >&2
fi
echo "$VENV/bin"
