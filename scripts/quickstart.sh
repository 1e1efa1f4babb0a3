#!/usr/bin/env bash
# Fresh machine to traced events: installs everything, then runs the quickstart
# notebook headless and leaves the executed copy in notebooks/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p notebooks/out
for nb in 01-tracing-basics 02-plain-english; do
    .venv/bin/jupyter execute --kernel_name=kgent --output=out/$nb.ipynb notebooks/$nb.ipynb
    echo "Executed notebook: notebooks/out/$nb.ipynb"
done
if grep -q "Not verified" notebooks/out/02-plain-english.ipynb; then
    echo "quickstart: the programs were not verified (kgent-verifier missing?); see kgent doctor" >&2
    ./target/release/kgent doctor || true
    exit 1
fi
./target/release/kgent doctor || true
