#!/usr/bin/env bash
# The demo: the whole pipeline on the embedded Tansu broker and a project-local
# PostgreSQL, both on free loopback ports, fed by a deterministic simulated clickstream.
# Prints decisions as they happen and a summary, then stops everything it started.
# Safe to run twice in a row, and after an interrupted run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT_ROOT=$ROOT
source "$ROOT/scripts/lib/services.sh"

BECKON="$ROOT/.build/release/beckon"
# Outside the checkout: PostgreSQL runs as the 'postgres' user when we are root, and may
# not be allowed into the checkout's folders. Fixed per checkout, so a later run finds
# and cleans up what an interrupted one left.
RUN_DIR="${TMPDIR:-/tmp}/beckon-demo-$(printf '%s' "$ROOT" | md5sum | cut -c1-10)"
VISITORS=${VISITORS:-300}
SEED=${SEED:-42}
[ -x "$BECKON" ] || { echo "build first: make release (make demo does)" >&2; exit 1; }

cleanup_previous_run "$RUN_DIR"
mkdir -p "$RUN_DIR"
beckon_pid=""
finish() {
  local rc=$?
  [ -n "$beckon_pid" ] && kill -TERM "$beckon_pid" 2>/dev/null && wait "$beckon_pid" 2>/dev/null
  stop_services "$RUN_DIR"
  rm -rf "$RUN_DIR"
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

echo "==> starting Tansu and PostgreSQL on free loopback ports"
start_tansu "$RUN_DIR"
start_postgres "$RUN_DIR"
echo "    Kafka (Tansu)  127.0.0.1:$TANSU_PORT"
echo "    PostgreSQL     $PG_URL"

export BECKON_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$TANSU_PORT"
export BECKON_POSTGRES_URL="$PG_URL"
export BECKON_TOPICS_PARTITIONS=4
export BECKON_PATHS_RULES="$ROOT/Rules"
export BECKON_PATHS_SCHEMAS="$ROOT/Schemas"

echo "==> topics and migrations"
"$BECKON" topics create
"$BECKON" migrate --log-level warning
"$BECKON" rules check

echo "==> simulating $VISITORS visitors (seed $SEED)"
"$BECKON" simulate --visitors "$VISITORS" --seed "$SEED" --scenarios --log-level warning

echo "==> beckon run (decisions as they happen; it exits once everything is processed)"
"$BECKON" run --exit-when-drained --print-decisions --log-level notice &
beckon_pid=$!
wait "$beckon_pid"
beckon_pid=""

echo "==> in PostgreSQL"
psql "$PG_URL" -X -q -A -t -F ' ' -c \
  "SELECT 'decisions stored: ' || count(*) || ' (' || count(DISTINCT decision_id) || ' distinct ids)' FROM decisions" -c \
  "SELECT 'dead letters stored: ' || count(*) FROM dead_letters" -c \
  "SELECT 'suppressed firings stored: ' || coalesce(sum(n), 0) || coalesce(' (' || string_agg(reason || ' ' || n, ', ' ORDER BY reason) || ')', '') FROM (SELECT reason, count(*) AS n FROM suppressions GROUP BY reason) s"
echo "==> stopping everything the demo started"
