#!/usr/bin/env bash
# Every test: formatting and lints, the Rust tests, then the Jupyter-client tests
# against the real kernel, bpftrace and the running Linux kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --workspace --release
cargo test --workspace --release
.venv/bin/python -m pytest -q tests
