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
# The same job written in Quix Streams and in Bytewax (Benchmarks/peers: per-visitor
# counts in 1-minute windows and the payment-page dwell rule) reads the same topic in the
# same run, and first all three must make the same decisions on a small stream.
#
# Usage: scripts/bench-e2e.sh        (make bench-e2e)
#   VISITORS=210000 (about 2,050,000 events)  RUNS=3  PARTITIONS=12  CHECK_VISITORS=500
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT_ROOT=$ROOT
source "$ROOT/scripts/lib/services.sh"

VISITORS=${VISITORS:-210000}
CHECK_VISITORS=${CHECK_VISITORS:-500}
RUNS=${RUNS:-3}
PARTITIONS=${PARTITIONS:-12}
SEED=${SEED:-11}
BECKON="$ROOT/.build/release/beckon"
PERF="$ROOT/.deps/librdkafka/bin/rdkafka_performance"
[ -x "$BECKON" ] || { echo "build first: make release (make bench-e2e does)" >&2; exit 1; }
bash "$ROOT/scripts/lib/build_rdkafka_performance.sh"
PEERS_VENV="$ROOT/.deps/peers-venv"
if ! "$PEERS_VENV/bin/python" -c "import quixstreams, bytewax.connectors.kafka" 2>/dev/null; then
  echo "installing the peers (quixstreams, bytewax[kafka]) into $PEERS_VENV"
  python3 -m venv "$PEERS_VENV"
  "$PEERS_VENV/bin/pip" install -q quixstreams "bytewax[kafka]"
fi
PEER() { PYTHONPATH="$ROOT/Benchmarks/peers" "$PEERS_VENV/bin/python" "$ROOT/Benchmarks/peers/$1_job.py" "${@:2}"; }
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
export BECKON_PATHS_RULES="$ROOT/Benchmarks/e2e-rules"  # the rule the peers implement too
export BECKON_PATHS_SCHEMAS="$ROOT/Schemas"
export BECKON_METRICS_LISTEN=""
# 1. Same decisions: a small stream (no malformed events; every journey ends with a page
#    view, since the peers have no event-time timers), through all three.
"$BECKON" topics create --set topics.events=check.events --set topics.decisions=check.decisions --set topics.dead_letters=check.dlq >/dev/null
"$BECKON" simulate --set topics.events=check.events --visitors "$CHECK_VISITORS" --seed "$SEED" --bad-share 0 --farewell --log-level warning \
  | tee "$RUN_DIR/check.log"
check_events=$(sed -n 's/^produced \([0-9]*\) events.*/\1/p' "$RUN_DIR/check.log")
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U beckon check
CHECK=(--set "postgres.url=$PG_BASE/check" --set topics.events=check.events --set topics.decisions=check.decisions --set topics.dead_letters=check.dlq --set kafka.group.id=check)
"$BECKON" migrate "${CHECK[@]}" --log-level warning >/dev/null
"$BECKON" run --exit-when-drained "${CHECK[@]}" --log-level warning >"$RUN_DIR/check-beckon.log" 2>&1
psql "$PG_BASE/check" -X -q -A -t -F ' ' -c "SELECT visitor_id, trigger_event_id FROM decisions ORDER BY 1, 2" >"$RUN_DIR/check-beckon.txt"
for peer in quix bytewax; do
  PEER "$peer" "127.0.0.1:$TANSU_PORT" check.events "$check_events" "$RUN_DIR/check-$peer.json" >"$RUN_DIR/check-$peer.out" 2>"$RUN_DIR/check-$peer.err" ||
    { tail -20 "$RUN_DIR/check-$peer.err" >&2; exit 1; }
  python3 -c 'import json,sys; [print(v, t) for v, t in json.load(open(sys.argv[1]))]' "$RUN_DIR/check-$peer.json" | sort >"$RUN_DIR/check-$peer.txt"
  if ! cmp -s "$RUN_DIR/check-beckon.txt" "$RUN_DIR/check-$peer.txt"; then
    echo "bench-e2e: $peer and Beckon decide differently on the check stream:" >&2
    diff "$RUN_DIR/check-beckon.txt" "$RUN_DIR/check-$peer.txt" | head -20 >&2
    exit 1
  fi
done
say "same decisions from Beckon, Quix Streams and Bytewax on $check_events events: $(wc -l <"$RUN_DIR/check-beckon.txt") decisions"

# 2. The measured topic.
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

# 3. The peers on the same topic.
quix_rates=()
bytewax_rates=()
for i in $(seq "$RUNS"); do
  for peer in quix bytewax; do
    PEER "$peer" "127.0.0.1:$TANSU_PORT" bench.events "$events" >"$RUN_DIR/$peer-$i.out" 2>"$RUN_DIR/$peer-$i.err" ||
      { tail -20 "$RUN_DIR/$peer-$i.err" >&2; exit 1; }
    seconds=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$RUN_DIR/$peer-$i.out")
    rate=$(awk "BEGIN {printf \"%d\", $events / $seconds}")
    if [ "$peer" = quix ]; then quix_rates+=("$rate"); else bytewax_rates+=("$rate"); fi
    say "run $i: $peer $(printf '%*s' $((12 - ${#peer})) '')$events events in ${seconds} s: $rate events/s"
  done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
raw_median=$(median "${raw_rates[@]}")
beckon_median=$(median "${beckon_rates[@]}")
# 4. Latency: live streams at a steady rate, event times = the wall clock; Beckon reports
#    Kafka's acknowledgment of each decision minus the decision's event time (the dwell's
#    due time), with the default allowed lateness (5 s) and with none.
latency_lines=()
for rate in 10000 20000; do
  for lateness in 5s 0s; do
    name="live-$rate-${lateness}"
    LIVE=(--set "topics.events=$name" --set "topics.decisions=$name.decisions" --set "topics.dead_letters=$name.dlq"
          --set "postgres.url=$PG_BASE/live" --set "kafka.group.id=$name" --set "paths.rules=$ROOT/Benchmarks/latency-rules"
          --set "engine.allowed_lateness=$lateness")
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U beckon live 2>/dev/null || true
    "$BECKON" migrate "${LIVE[@]}" --log-level warning >/dev/null
    "$BECKON" topics create "${LIVE[@]}" >/dev/null
    "$BECKON" run "${LIVE[@]}" --log-level info >"$RUN_DIR/$name.log" 2>&1 &
    live_pid=$!
    for _ in $(seq 300); do grep -q "partitions assigned" "$RUN_DIR/$name.log" && break; sleep 0.1; done
    "$BECKON" simulate "${LIVE[@]}" --rate "$rate" --seconds 20 --seed "$SEED" --log-level warning >"$RUN_DIR/$name.produce"
    sleep 8  # the last dwells fire once the idle watermark passes them
    kill -TERM "$live_pid"
    wait "$live_pid"
    line=$(grep "decision latency" "$RUN_DIR/$name.log" | sed 's/ *(Kafka ack.*//')
    produced=$(cat "$RUN_DIR/$name.produce")
    latency_lines+=("  $rate events/s, allowed lateness $lateness: $line  [$produced]")
    say "latency, $rate events/s, lateness $lateness: $line"
  done
done

quix_median=$(median "${quix_rates[@]}")
bytewax_median=$(median "${bytewax_rates[@]}")
ratio() { awk "BEGIN {printf \"%.3f\", $1 / $2}"; }
faster=$(( quix_median > bytewax_median ? quix_median : bytewax_median ))
echo "medians of $RUNS on $events events, $PARTITIONS partitions:"
echo "  raw consume   $raw_median msgs/s"
echo "  beckon        $beckon_median events/s   ($(ratio "$beckon_median" "$raw_median") of raw consume)"
echo "  quixstreams   $quix_median events/s   (beckon is $(ratio "$beckon_median" "$quix_median")x)"
echo "  bytewax       $bytewax_median events/s   (beckon is $(ratio "$beckon_median" "$bytewax_median")x)"
echo "event → decision latency (dwell timers; Kafka ack − due time):"
printf '%s\n' "${latency_lines[@]}"
echo "raw consume $raw_median msgs/s, beckon $beckon_median events/s, quixstreams $quix_median events/s, bytewax $bytewax_median events/s; beckon/raw $(ratio "$beckon_median" "$raw_median"), beckon/faster peer $(ratio "$beckon_median" "$faster")"
