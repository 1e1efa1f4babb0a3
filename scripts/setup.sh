#!/usr/bin/env bash
# Installs everything Kgent needs on a Debian/Ubuntu machine, idempotently:
# bpftrace and bpftool, tracefs, a Python environment with Jupyter in .venv,
# a release build of kgent, and its kernelspec inside .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

need_apt=()
command -v bpftrace >/dev/null || need_apt+=(bpftrace)
command -v bpftool >/dev/null || need_apt+=(bpftool)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The symbolic verifier (verify/) links Debian's Z3; bindgen reads its header with libclang.
for pkg in libz3-dev libclang-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need_apt+=("$pkg")
done
command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  log "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
  log "mounting tracefs"
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || sudo mount -t tracefs nodev /sys/kernel/tracing || true
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s tests/requirements.txt .venv/.requirements.txt; then
  log "installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt .venv/.requirements.txt
fi

log "building kgent and its verifier helper (release)"
# kgent-verifier (Z3) sits next to kgent, where the kernel looks for it.
cargo build --release --quiet -p kgent -p kgent-verify --bin kgent --bin kgent-verifier
./target/release/kgent install --prefix "$root/.venv" >/dev/null
log "kgent installed as the Jupyter kernel 'kgent' in .venv"
