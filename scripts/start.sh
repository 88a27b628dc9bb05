#!/usr/bin/env bash
# Builds skiff and starts a single-node cluster on the embedded store.
# Usage: scripts/start.sh [extra skiff server flags]   (data in /var/lib/skiff unless --data-dir is given)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release -p skiff-cli
exec ./target/release/skiff server "$@"
