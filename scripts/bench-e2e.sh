#!/usr/bin/env bash
# End-to-end benchmark, side by side in one run: the raw librdkafka consume rate of a
# topic (librdkafka's own rdkafka_performance, built from the same source) against Beckon
# consuming the same topic from the start, with decisions going to Kafka and PostgreSQL.
#
# On its own Tansu and PostgreSQL (free loopback ports), it produces the simulator's
# stream (fixed seed) to a 12-partition topic before anything is measured, then runs
# raw consume and Beckon alternately, RUNS times each, in fresh consumer groups, and
# prints each rate, the medians and their ratio. Both include the consumer-group join.
#
# Usage: scripts/bench-e2e.sh        (make bench-e2e)
#   VISITORS=210000 (about 2,050,000 events)  RUNS=3  PARTITIONS=12
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT_ROOT=$ROOT
source "$ROOT/scripts/lib/services.sh"

VISITORS=${VISITORS:-210000}
RUNS=${RUNS:-3}
PARTITIONS=${PARTITIONS:-12}
SEED=${SEED:-11}
BECKON="$ROOT/.build/release/beckon"
PERF="$ROOT/.deps/librdkafka/bin/rdkafka_performance"
[ -x "$BECKON" ] || { echo "build first: make release (make bench-e2e does)" >&2; exit 1; }
bash "$ROOT/scripts/lib/build_rdkafka_performance.sh"
RUN_DIR="${TMPDIR:-/tmp}/beckon-bench-$(printf '%s' "$ROOT" | md5sum | cut -c1-10)"
cleanup_previous_run "$RUN_DIR"
mkdir -p "$RUN_DIR"
finish() {
  local rc=$?
  stop_services "$RUN_DIR"
  rm -rf "$RUN_DIR"
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM
say() { echo "[bench-e2e +${SECONDS}s] $*"; }

start_tansu "$RUN_DIR"
start_postgres "$RUN_DIR"
PG_BASE="postgresql://beckon@127.0.0.1:$PG_PORT"
export BECKON_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$TANSU_PORT"
export BECKON_TOPICS_PARTITIONS=$PARTITIONS
export BECKON_TOPICS_EVENTS=bench.events
export BECKON_TOPICS_DECISIONS=bench.decisions
export BECKON_TOPICS_DEAD_LETTERS=bench.dlq
export BECKON_PATHS_RULES="$ROOT/Rules"
export BECKON_PATHS_SCHEMAS="$ROOT/Schemas"
export BECKON_METRICS_LISTEN=""
"$BECKON" topics create >/dev/null
"$BECKON" simulate --visitors "$VISITORS" --seed "$SEED" --span 3h --log-level warning | tee "$RUN_DIR/simulate.log"
events=$(sed -n 's/^produced \([0-9]*\) events.*/\1/p' "$RUN_DIR/simulate.log")
say "$events events in $PARTITIONS partitions, produced before measuring"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
raw_rates=()
beckon_rates=()
for i in $(seq "$RUNS"); do
  # Raw consume: a balanced consumer in a fresh group reads every message and does nothing else.
  t0=$(now_ms)
  "$PERF" -C -G "raw-$i" -t bench.events -b "127.0.0.1:$TANSU_PORT" -c "$events" -X auto.offset.reset=earliest -q \
    >"$RUN_DIR/raw-$i.log" 2>&1
  t1=$(now_ms)
  raw=$((events * 1000 / (t1 - t0)))
  raw_rates+=("$raw")
  say "run $i: raw consume   $events messages in $((t1 - t0)) ms: $raw msgs/s"

  # Beckon: decode, core, rules, policy; decisions to Kafka and PostgreSQL; offsets committed.
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U beckon "bench$i"
  "$BECKON" migrate --set "postgres.url=$PG_BASE/bench$i" --log-level warning >/dev/null
  t0=$(now_ms)
  "$BECKON" run --exit-when-caught-up --set "postgres.url=$PG_BASE/bench$i" --set "kafka.group.id=beckon-$i" \
    --log-level warning >"$RUN_DIR/beckon-$i.log" 2>&1
  t1=$(now_ms)
  rate=$((events * 1000 / (t1 - t0)))
  beckon_rates+=("$rate")
  decisions=$(psql "$PG_BASE/bench$i" -X -q -A -t -c "SELECT count(*) FROM decisions")
  say "run $i: beckon        $events events in $((t1 - t0)) ms: $rate events/s ($decisions decisions)"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
raw_median=$(median "${raw_rates[@]}")
beckon_median=$(median "${beckon_rates[@]}")
echo "raw consume $raw_median msgs/s, beckon $beckon_median events/s, ratio $(awk "BEGIN {printf \"%.3f\", $beckon_median / $raw_median}") (medians of $RUNS; $events events, $PARTITIONS partitions)"
