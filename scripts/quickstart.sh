#!/usr/bin/env bash
# Fresh machine to traced events: installs everything, then runs the quickstart
# notebook headless and leaves the executed copy in notebooks/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p notebooks/out
.venv/bin/jupyter execute --kernel_name=kgent --output=out/01-tracing-basics.ipynb notebooks/01-tracing-basics.ipynb
echo "Executed notebook: notebooks/out/01-tracing-basics.ipynb"
./target/release/kgent doctor || true
