#!/usr/bin/env bash
# The pinned Python environment of the benchmarks' peers (scripts/bench-snapshot-peers.sh): DuckDB
# and polars. A venv of its own under $QUIVER_TOOLS_DIR, named by a hash of the pins like the
# tests' (scripts/python-env.sh), whose pins it does not touch: the tests and CI never install
# these. Created only when missing. Prints the venv's bin directory.
set -euo pipefail

PINS=(
  "duckdb==2.0.1"
  "polars==2.1.0"
)

TOOLS="${QUIVER_TOOLS_DIR:-$HOME/.cache/quiver-tools}"
PINS_HASH="$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"
VENV="$TOOLS/bench-venv-$PINS_HASH"

mkdir -p "$TOOLS"
exec 9>"$TOOLS/.bench-python-env.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
  command -v python3 >/dev/null || { echo "python3 is needed (apt-get install python3 python3-venv)" >&2; exit 1; }
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" >&2
  touch "$VENV/.complete"
fi
echo "$VENV/bin"
