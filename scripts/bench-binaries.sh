# Sourced by the bench scripts (from the checkout's root): sets `bin` (the release `quiver`) and
# `bench_bin` (the release `quiver-bench`), QUIVER_BIN and QUIVER_BENCH_BIN overriding, and builds
# them when either is missing.
target_dir="${CARGO_TARGET_DIR:-target}"
bin="${QUIVER_BIN:-$target_dir/release/quiver}"
bench_bin="${QUIVER_BENCH_BIN:-$target_dir/release/quiver-bench}"
{ [ -x "$bin" ] && [ -x "$bench_bin" ]; } || cargo build --release -p quiver -p quiver-bench
