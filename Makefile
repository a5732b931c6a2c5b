# Quiver's entry points. `make help` lists them. CARGO_TARGET_DIR is honoured if set.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help deps build run test lint verify fuzz chaos fix charts-check bench clean-data \
	python-proto python-proto-check python-client-test

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

deps: ## Install missing system packages (protoc); safe to re-run
	@scripts/install-deps.sh

build: deps ## Build the quiver binary (release)
	$(CARGO) build --release -p quiver

run: build ## Run Quiver: `quiver dev` with the example definitions applied
	$(CARGO) run --release -p quiver -- dev --apply examples

test: deps ## Run every test: unit, service, process (incl. pyarrow and S3) and chart checks
	@scripts/python-env.sh >/dev/null
	$(CARGO) test --workspace --all-targets
	@$(MAKE) --no-print-directory python-client-test
	@$(MAKE) --no-print-directory charts-check

lint: deps ## Check formatting, clippy (-D warnings), dependency sources and licenses; writes nothing
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@scripts/check_dependencies.py --self-test >/dev/null
	@scripts/check_dependencies.py

verify: lint test ## What CI runs: lint, then every test; writes nothing

fuzz: deps ## Every decoder's mutation fuzzer, longer than `make test` runs them (FUZZ_CASES, FUZZ_SEED)
	QUIVER_FUZZ_CASES=$${FUZZ_CASES:-1000000} QUIVER_FUZZ_SEED=$${FUZZ_SEED:-$$(date +%s)} \
		$(CARGO) test --release -p quiver-online-store -p quiver-core -p quiver-registry \
		-p quiver-common -p quiver-offline -p quiver --lib --bins -- fuzz mutated --nocapture

chaos: deps ## Long fault campaigns as root: partitions, kills, full disks, a 10-minute object store outage, a 2 GiB snapshot catch-up (CHAOS_*; needs ~14 GB free disk)
	QUIVER_REQUIRE_NETNS=1 QUIVER_CHAOS_ROUNDS=$${CHAOS_ROUNDS:-50} QUIVER_CHAOS_KILLS=$${CHAOS_KILLS:-100} \
		QUIVER_CHAOS_BATCH=$${CHAOS_BATCH:-250} QUIVER_CHAOS_PRODUCERS=$${CHAOS_PRODUCERS:-8} QUIVER_CHAOS_CLOCK_STEP_US=1000 \
		QUIVER_CHAOS_SEED=$${CHAOS_SEED:-$$(date +%s)} QUIVER_CHAOS_OUTAGE_SECS=$${CHAOS_OUTAGE_SECS:-600} \
		QUIVER_SNAPSHOT_STATE_MIB=$${CHAOS_SNAPSHOT_MIB:-2048} \
		$(CARGO) test --release -p quiver --test chaos --test export_backpressure --test snapshot_catch_up -- --nocapture --test-threads 1

fix: ## Format and apply clippy's fixes
	$(CARGO) fmt --all
	$(CARGO) clippy --workspace --all-targets --fix --allow-dirty --allow-staged

python-proto: ## Regenerate the Python client's protobuf modules (clients/python/quiver/_proto) from proto/
	@py="$$(scripts/python-env.sh)" && "$$py/python" clients/python/tools/generate_proto.py

python-proto-check: ## Check the Python client's generated code matches proto/; writes nothing
	@py="$$(scripts/python-env.sh)" && "$$py/python" clients/python/tools/generate_proto.py --check

python-client-test: python-proto-check ## The Python client's tests (pytest) against a real `quiver dev`
	$(CARGO) build -p quiver
	@py="$$(scripts/python-env.sh)" && cd clients/python && \
	  PYTHONDONTWRITEBYTECODE=1 QUIVER_BIN="$(abspath $(or $(CARGO_TARGET_DIR),target))/debug/quiver" \
	  "$$py/python" -m pytest -q -p no:cacheprovider

charts-check: ## Lint, render and schema-validate the Helm chart and k8s manifests
	@scripts/charts-check.sh

bench: deps ## Benchmarks (docs/benchmarks.md): reads, replicated writes, peers, streaming push, tile engine, snapshots
	$(CARGO) build --release -p quiver -p quiver-bench
	scripts/bench-online.sh get
	scripts/bench-online.sh write
	scripts/bench-online.sh peers
	scripts/bench-push.sh
	scripts/bench-snapshot.sh
	scripts/bench-snapshot-peers.sh

clean-data: ## Delete ./quiver-data (the state of `make run`)
	rm -rf quiver-data
