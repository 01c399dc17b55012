#!/usr/bin/env bash
# Fuzzes the event decoder with mutated bytes seeded from Schemas/examples.
#   scripts/fuzz.sh [INPUTS] [SEED]     default: 1,000,000 inputs, seed 1
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PKG_CONFIG_PATH="$ROOT/.deps/librdkafka/lib/pkgconfig"
swift build -c release --product beckon-fuzz 2>&1 | grep -E "error|warning: " || true
[ -x "$ROOT/.build/release/beckon-fuzz" ] || { echo "beckon-fuzz did not build" >&2; exit 1; }
exec "$ROOT/.build/release/beckon-fuzz" --inputs "${1:-1000000}" --seed "${2:-1}" --corpus "$ROOT/Schemas/examples"
