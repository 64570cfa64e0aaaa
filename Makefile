# RocksDB takes minutes to compile; keep one target directory outside the clone so
# every checkout (and CI) reuses it.
CARGO_TARGET_DIR ?= $(HOME)/.cache/sundial/target
export CARGO_TARGET_DIR

.PHONY: setup run test model lint bench
setup:
	@bash scripts/setup.sh

## The main job: at this stage, an end-to-end engine demo.
run: setup
	cargo run -p sundial -- demo

## Every check CI runs: format, lints, all tests.
test: setup lint
	cargo test --workspace --no-fail-fast

## A longer model-based run (1000 random operation sequences).
model: setup
	SUNDIAL_MODEL_CASES=1000 cargo test -p sundial-engine --test model

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

## The engine benchmark (release build; prints a table).
bench: setup
	cargo run --release -p sundial-benches -- engine
