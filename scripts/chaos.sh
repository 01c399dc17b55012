#!/usr/bin/env bash
# Chaos harness: Beckon keeps its promises when processes die, PostgreSQL goes away and
# consumer-group members leave.
#
# On its own Tansu and PostgreSQL (free loopback ports), it produces one deterministic
# simulated stream, runs an uninterrupted reference over it, and then processes the same
# stream in another consumer group while:
#   - killing `beckon run` with kill -9 at random moments and restarting it (KILLS times),
#   - stopping PostgreSQL for OUTAGE seconds mid-run,
#   - running two instances in one group and killing one of them mid-run,
#   - finally stopping an instance with SIGTERM, which must exit 0 within 10 s.
# Then it compares with the reference: the same set of decision_ids in PostgreSQL, no id
# twice, no visitor prompted twice within the policy's minimum gap, every input event
# processed (same committed offsets and dead letters), and counts repeats on the
# decisions topic (at-least-once delivery; frontends drop them by decision_id).
#
# Usage: scripts/chaos.sh [--short]   (make chaos; the short variant runs in make test)
# Prints one line: runs N, lost 0, duplicated 0, cooldown violations 0, topic duplicates K
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT_ROOT=$ROOT
source "$ROOT/scripts/lib/services.sh"

MODE=full
[ "${1:-}" = "--short" ] && MODE=short
if [ "$MODE" = short ]; then
  VISITORS=${VISITORS:-20000} KILLS=${KILLS:-3} OUTAGE=${OUTAGE:-5} SPAN=${SPAN:-1h}
else
  VISITORS=${VISITORS:-100000} KILLS=${KILLS:-20} OUTAGE=${OUTAGE:-20} SPAN=${SPAN:-3h}
fi
SEED=${SEED:-7}
RANDOM=$SEED  # the kill moments are deterministic too
BECKON="$ROOT/.build/release/beckon"
[ -x "$BECKON" ] || { echo "build first: make release (make chaos does)" >&2; exit 1; }
RUN_DIR="${TMPDIR:-/tmp}/beckon-chaos-$(printf '%s' "$ROOT" | md5sum | cut -c1-10)"
cleanup_previous_run "$RUN_DIR"
mkdir -p "$RUN_DIR"
pids=()
finish() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  stop_services "$RUN_DIR"
  if [ $rc -ne 0 ] && [ -d "$RUN_DIR" ]; then
    echo "chaos: failed (exit $rc); logs:" >&2
    for log in "$RUN_DIR"/*.log; do echo "--- $log (tail)" >&2; tail -5 "$log" >&2; done
  fi
  rm -rf "$RUN_DIR"
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM
say() { echo "[chaos +${SECONDS}s] $*"; }

say "$MODE variant: $VISITORS visitors, $KILLS kill -9 cycles, PostgreSQL down for ${OUTAGE}s"
start_tansu "$RUN_DIR"
start_postgres "$RUN_DIR"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U beckon reference
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U beckon chaos
PG_BASE="postgresql://beckon@127.0.0.1:$PG_PORT"

export BECKON_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$TANSU_PORT"
export BECKON_TOPICS_PARTITIONS=4
export BECKON_TOPICS_EVENTS=chaos.events
export BECKON_TOPICS_DEAD_LETTERS=chaos.dlq
export BECKON_PATHS_RULES="$ROOT/Rules"
export BECKON_PATHS_SCHEMAS="$ROOT/Schemas"
export BECKON_METRICS_LISTEN=""  # several instances run at once
REF=(--set "postgres.url=$PG_BASE/reference" --set kafka.group.id=reference --set topics.decisions=reference.decisions)
CHAOS=(--set "postgres.url=$PG_BASE/chaos" --set kafka.group.id=chaos --set topics.decisions=chaos.decisions)

"$BECKON" topics create "${REF[@]}" >/dev/null
"$BECKON" topics create "${CHAOS[@]}" >/dev/null
"$BECKON" migrate "${REF[@]}" --log-level warning
"$BECKON" migrate "${CHAOS[@]}" --log-level warning
# Sessions spread over $SPAN of event time, so they end along the stream and a restart
# re-reads only what still belongs to open sessions.
"$BECKON" simulate --visitors "$VISITORS" --seed "$SEED" --span "$SPAN" --log-level warning
say "stream produced"

"$BECKON" run --exit-when-drained "${REF[@]}" --log-level warning >"$RUN_DIR/reference.log" 2>&1
say "reference run done"

runs=0
start_chaos() {  # start_chaos NAME -> sets last_pid (a watchdog ends a run stuck for 15 min)
  "$BECKON" run --exit-when-drained "${CHAOS[@]}" --log-level info >>"$RUN_DIR/$1.log" 2>&1 &
  last_pid=$!
  (sleep 900; kill -9 "$last_pid" 2>/dev/null) >/dev/null 2>&1 &
  pids+=("$last_pid" "$!")
  disown $!
  runs=$((runs + 1))
}

# 1. PostgreSQL goes away mid-run, and comes back.
start_chaos outage
for _ in $(seq 300); do grep -q "partitions assigned" "$RUN_DIR/outage.log" && break; sleep 0.1; done
sleep 1
as=()
[ "$(id -u)" -eq 0 ] && as=(setpriv --reuid=postgres --regid=postgres --init-groups)
"${as[@]}" "$PG_BIN/pg_ctl" -D "$RUN_DIR/pgdata" -m fast -w stop >/dev/null
say "PostgreSQL stopped for ${OUTAGE}s"
sleep "$OUTAGE"
"${as[@]}" "$PG_BIN/postgres" -D "$RUN_DIR/pgdata" -p "$PG_PORT" -k "$RUN_DIR/pgdata" -c listen_addresses=127.0.0.1 \
  >>"$RUN_DIR/postgres.log" 2>&1 &
echo $! >>"$RUN_DIR/pids"
until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do sleep 0.2; done
say "PostgreSQL back"
outage_pid=$last_pid
sleep 3
if kill -0 "$outage_pid" 2>/dev/null; then kill -9 "$outage_pid"; fi
wait "$outage_pid" 2>/dev/null || true
grep -q "PostgreSQL unavailable: paused consumption" "$RUN_DIR/outage.log" && say "the instance paused during the outage" ||
  say "the instance did not see the outage (it had finished or was between batches)"

# 2. kill -9 at random moments of processing (a moment after the partitions are
#    assigned; each restart rebuilds state and goes on from the committed offsets).
killed=0
for i in $(seq "$KILLS"); do
  start_chaos "run-$i"
  for _ in $(seq 300); do grep -q "partitions assigned" "$RUN_DIR/run-$i.log" && break; sleep 0.1; done
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  if kill -0 "$last_pid" 2>/dev/null; then
    kill -9 "$last_pid"
    killed=$((killed + 1))
  fi
  wait "$last_pid" 2>/dev/null || true
done
say "$KILLS kill -9 cycles ($killed landed mid-run)"

# 3. Two instances in one group; one is killed mid-run and the other takes over its
#    partitions (after the dead member's session times out), then stops with SIGTERM.
start_chaos pair-a
a=$last_pid
"$BECKON" run "${CHAOS[@]}" --log-level info >>"$RUN_DIR/pair-b.log" 2>&1 &
b=$!
pids+=("$b")
runs=$((runs + 1))
for _ in $(seq 300); do
  grep -q "partitions assigned" "$RUN_DIR/pair-a.log" && grep -q "partitions assigned" "$RUN_DIR/pair-b.log" && break
  sleep 0.1
done
sleep 1
kill -9 "$a" 2>/dev/null || true
wait "$a" 2>/dev/null || true
takeover=no
for _ in $(seq 600); do
  if grep -q "beckon.partitions=\[0, 1, 2, 3\] \[Beckon\] partitions assigned" "$RUN_DIR/pair-b.log" ||
     [ "$(grep "partitions assigned" "$RUN_DIR/pair-b.log" | wc -l)" -ge 2 ]; then takeover=yes; break; fi
  sleep 0.1
done
sleep 5
kill -TERM "$b"
wait "$b" || { echo "chaos: the surviving instance did not stop cleanly" >&2; exit 1; }
say "two instances, one killed (survivor took over its partitions: $takeover)"

# 4. A last instance finishes the stream.
start_chaos final
wait "$last_pid"
say "final run done"

# 5. SIGTERM: a clean stop within 10 s, exit 0.
"$BECKON" run "${CHAOS[@]}" --log-level info >"$RUN_DIR/sigterm.log" 2>&1 &
term_pid=$!
pids+=("$term_pid")
for _ in $(seq 200); do grep -q "partitions assigned" "$RUN_DIR/sigterm.log" && break; sleep 0.1; done
start_ns=$(date +%s%N)
kill -TERM "$term_pid"
set +e
wait "$term_pid"
term_rc=$?
set -e
term_ms=$((($(date +%s%N) - start_ns) / 1000000))
say "SIGTERM: exit $term_rc after ${term_ms} ms"

# Compare with the reference.
q() { psql "$PG_BASE/$1" -X -q -A -t -c "$2"; }
q reference "SELECT decision_id FROM decisions ORDER BY 1" >"$RUN_DIR/reference.ids"
q chaos "SELECT decision_id FROM decisions ORDER BY 1" >"$RUN_DIR/chaos.ids"
lost=$(comm -23 "$RUN_DIR/reference.ids" "$RUN_DIR/chaos.ids" | wc -l)
duplicated=$(($(comm -13 "$RUN_DIR/reference.ids" "$RUN_DIR/chaos.ids" | wc -l) + $(q chaos "SELECT count(*) - count(DISTINCT decision_id) FROM decisions")))
min_gap_s=$(sed -n 's/^min_gap: *\([0-9]*\)m.*/\1/p' "$ROOT/Rules/policy.yaml")
min_gap_s=$(( ${min_gap_s:-2} * 60 ))
violations=$(q chaos "SELECT count(*) FROM decisions a JOIN decisions b ON a.visitor_id = b.visitor_id AND a.decision_id < b.decision_id
  AND a.experiment = 'treatment' AND b.experiment = 'treatment' AND abs(extract(epoch FROM a.event_time - b.event_time)) < $min_gap_s")
offsets_ref=$(q reference "SELECT string_agg(partition || ':' || committed_offset, ' ' ORDER BY partition) FROM beckon_partition_state")
offsets_chaos=$(q chaos "SELECT string_agg(partition || ':' || committed_offset, ' ' ORDER BY partition) FROM beckon_partition_state")
letters_ref=$(q reference "SELECT count(*) FROM dead_letters")
letters_chaos=$(q chaos "SELECT count(*) FROM dead_letters")
repeats=$("$BECKON" topics stats chaos.decisions "${CHAOS[@]}" --log-level warning | sed -n 's/.*repeats \([0-9]*\).*/\1/p')
decisions=$(wc -l <"$RUN_DIR/reference.ids")
say "reference: $decisions decisions, committed offsets [$offsets_ref], $letters_ref dead letters"
say "chaos:     $(wc -l <"$RUN_DIR/chaos.ids") decisions, committed offsets [$offsets_chaos], $letters_chaos dead letters"

echo "runs $runs, lost $lost, duplicated $duplicated, cooldown violations $violations, topic duplicates $repeats"
failed=0
[ "$lost" -eq 0 ] && [ "$duplicated" -eq 0 ] && [ "$violations" -eq 0 ] || failed=1
[ "$decisions" -gt 0 ] || { echo "chaos: the reference made no decisions; nothing was tested" >&2; failed=1; }
[ "$offsets_ref" = "$offsets_chaos" ] || { echo "chaos: not every input event was processed" >&2; failed=1; }
[ "$letters_ref" = "$letters_chaos" ] || { echo "chaos: dead letters differ" >&2; failed=1; }
[ "$term_rc" -eq 0 ] && [ "$term_ms" -le 10000 ] || { echo "chaos: SIGTERM did not give a clean exit within 10 s" >&2; failed=1; }
exit $failed
