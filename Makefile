# RocksDB takes minutes to compile; keep one target directory outside the clone so
# every checkout (and CI) reuses it.
CARGO_TARGET_DIR ?= $(HOME)/.cache/sundial/target
export CARGO_TARGET_DIR

# The failpoints (the `fail` crate) are compiled into the test build only.
FAILPOINTS = --features sundial/failpoints,sundial-tests/failpoints,sundial-engine/failpoints

.PHONY: setup rmq-clients run demo test model lint bench crash fuzz
setup:
	@bash scripts/setup.sh

## The official RocketMQ 5 clients tests/tests/rmq_clients.rs drives (Python, Node.js and
## Rust, under ~/.cache/sundial). Without network it warns and the test goes on, and
## those tests then fail saying why (unless SUNDIAL_SKIP_RMQ_CLIENTS=1).
rmq-clients:
	@bash scripts/rocketmq-clients.sh >/dev/null || echo "rmq-clients: the RocketMQ clients could not be installed; the rmq_clients tests will fail" >&2

## The main job: the daemon, with data in ./sundial-data, protocol on 127.0.0.1:7700 and
## metrics on http://127.0.0.1:7701/metrics (stop with Ctrl-C).
run: setup
	cargo run --release -p sundial -- serve

## An end-to-end engine demo without the daemon.
demo: setup
	cargo run -p sundial -- demo

## Every check CI runs: format, lints, all tests (with the failpoint tests).
test: setup rmq-clients lint
	cargo test --workspace --no-fail-fast $(FAILPOINTS)

## The crash loop with 50 kills (CI runs it with 10).
crash: setup
	cargo build -p sundial --features failpoints
	SUNDIAL_CRASH_KILLS=50 cargo test -p sundial-tests --features failpoints --test crash_loop -- --nocapture

## A longer model-based run (1000 random operation sequences).
model: setup
	SUNDIAL_MODEL_CASES=1000 cargo test -p sundial-engine --test model

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets $(FAILPOINTS) -- -D warnings

## The benchmarks (release build; print tables): the engine next to raw RocksDB, then
## durable sends, a 1M burst, steady 50k/s and one-by-one consumers through the daemon,
## each side by side with a Redis sorted-set delay queue; then a well-behaved client's latency under floods.
bench: setup
	cargo build --release -p sundial -p sundial-benches
	$(CARGO_TARGET_DIR)/release/sundial-bench engine
	$(CARGO_TARGET_DIR)/release/sundial-bench send --peer redis
	$(CARGO_TARGET_DIR)/release/sundial-bench burst --peer redis
	$(CARGO_TARGET_DIR)/release/sundial-bench steady --peer redis
	$(CARGO_TARGET_DIR)/release/sundial-bench consume --peer redis
	$(CARGO_TARGET_DIR)/release/sundial-bench flood

## Fuzz the wire decoders and the RocketMQ request decoder (cargo-fuzz, libFuzzer), each
## target for FUZZ_SECONDS; inputs that crash are saved under fuzz/artifacts/. Installs
## cargo-fuzz if missing. The stable toolchain needs RUSTC_BOOTSTRAP=1 for the sanitizer
## flags.
FUZZ_SECONDS ?= 120
fuzz:
	@command -v cargo-fuzz >/dev/null || env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked
	cd fuzz && for t in frame_decoder request_decoder rmq_request_decoder rmq_message_conversion; do \
	  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(HOME)/.cache/sundial/fuzz-target \
	    cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done
