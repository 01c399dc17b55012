#!/usr/bin/env bash
# Side-by-side core benchmark: an older commit against the working tree, run interleaved
# on the same machine, so drift between runs cancels out in the ratio.
#   scripts/core-ab.sh OLD_COMMIT [VISITORS] [ROUNDS] [RUNS] [dwell|shipped]
#   default: 100,000 visitors, 3 rounds (old, new, old, new, ...), best of 3 runs each
#   CALLGRIND=1 scripts/core-ab.sh OLD [VISITORS] [RUNS=1] [dwell|shipped]: instead of
#     timing, counts the instructions per event in PartitionProcessor.process on each side
#     under valgrind's callgrind (exact and repeatable, where times on a shared machine drift
#     by 10-20%; but fewer instructions need not mean less time when memory is the bottleneck).
#   PAIRS=1 scripts/core-ab.sh OLD [VISITORS] [PAIRS=6] [RUNS=3] [dwell|shipped]: old and new at the
#     same time, one on each core (cores swapped every pair), and the median new/old.
#   CACHESIM=1 scripts/core-ab.sh OLD [VISITORS=20000] [RUNS=1] [dwell|shipped]: counts, per event
#     in PartitionProcessor.process, the instructions and the data reads and writes that miss
#     a simulated 32 KB first-level and 2 MB last-level cache (callgrind's cache simulation,
#     both sides at once). Repeatable within 0.3 % (heap addresses vary), for changes aimed at
#     memory (layout, sizes), whose timed effect this shared machine's noise hides; at
#     20,000 visitors (9 MB of states) the 2 MB cache misses as a real one does at 100,000
#     and more. Prefetch instructions are not simulated: their effect needs timing.
# The workload is the core micro-benchmark's (make bench): the simulator's mix, seed 7,
# the shipped intent model, one dwell rule (or the shipped rules and policy: `shipped`).
# SPAN_MINUTES=180 (any mode) spreads the sessions over three hours instead of ten minutes,
# so sessions end and visitors are evicted while events flow, as in a long-running stream.
# SCENARIOS=1 (any mode) adds the simulator's other journeys: clicks, form errors, chat, and
# a buyer who returns after 35 minutes (the benchmark's mix has none of these).
# LONG_IDS=1 (any mode) makes every event id and visitor id a 36-character UUID, as
# trackers send them (the simulator's fit inside a Swift string, so cost no reference counting).
# COMPACT_AFTER_SECONDS=N (any mode) sets the engine's `compactAfter` (default 60; 0 freezes
# no visitor): against the default, what the freezes cost in all.
# BATCH=N (the timed modes: callgrind counts inside `process` only) feeds the events in
# batches of N through `process(batch:)`, as the pipeline does, on a side whose core has it
# (the other side takes them one by one).
# STATS=1 (the timed modes) prints the processor's counts after each run, with the page faults
# during the run; PEAK=1 adds the peak of hot visitors (sampled after each batch: BATCH=N).
# Each side is built from its own checkout and reads its own Rules/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OLD=${1:?usage: scripts/core-ab.sh OLD_COMMIT [VISITORS] [ROUNDS] [RUNS] [dwell|shipped]}
VISITORS=${2:-100000}
ROUNDS=${3:-3}
RUNS=${4:-3}
RULES=${5:-dwell}
WORK="$ROOT/.build-ab"
mkdir -p "$WORK"
export PKG_CONFIG_PATH="$ROOT/.deps/librdkafka/lib/pkgconfig"

# The old side: a detached worktree at OLD (replaced if it points elsewhere).
OLD_SHA=$(git -C "$ROOT" rev-parse --verify "$OLD^{commit}")
if [ "$(git -C "$WORK/old" rev-parse HEAD 2>/dev/null || true)" != "$OLD_SHA" ]; then
    git -C "$ROOT" worktree remove --force "$WORK/old" 2>/dev/null || rm -rf "$WORK/old"
    git -C "$ROOT" worktree prune
    git -C "$ROOT" worktree add --detach "$WORK/old" "$OLD_SHA" >/dev/null
fi

build() {  # build SIDE ROOT: the harness against that checkout, in its own scratch path
    # SwiftPM may miss source files added to a path dependency, and does not rebuild Swift
    # code when only a C header it includes changed: rebuild from scratch when the list of
    # files or a header's text changed.
    local files; files=$(cd "$2" && { find Sources -name '*.swift' -o -name '*.c' -o -name '*.h' | sort; find Sources -name '*.h' | sort | xargs cat; } | cksum)
    if [ "$(cat "$WORK/$1-build.files" 2>/dev/null)" != "$files" ]; then rm -rf "$WORK/$1-build"; fi
    echo "$files" > "$WORK/$1-build.files"
    echo "building the $1 side ($(git -C "$2" rev-parse --short HEAD)$( [ -n "$(git -C "$2" status --porcelain -- Sources)" ] && echo ', with changes'))" >&2
    # A side whose core has `process(batch:)` builds the harness's BATCH=N option.
    local flags=()
    if grep -q "public mutating func process(batch:" "$2/Sources/BeckonCore/PartitionProcessor.swift"; then flags=(-Xswiftc -DBECKON_BATCH); fi
    # One whose hot states are a mapping of their own counts them in its heap figures.
    if grep -q "hotVisitorBufferBytes" "$2/Sources/BeckonCore/PartitionProcessor.swift"; then flags+=(-Xswiftc -DBECKON_REGION); fi
    BECKON_ROOT="$2" swift build -c release "${flags[@]}" --package-path "$ROOT/scripts/core-ab" --scratch-path "$WORK/$1-build" 2>&1 \
        | grep -E "error:" >&2 || true
    [ -x "$WORK/$1-build/release/core-ab" ] || { echo "the $1 side did not build" >&2; exit 1; }
}
build old "$WORK/old"
build new "$ROOT"

if [ -n "${CACHESIM:-}" ]; then
    command -v valgrind >/dev/null || { echo "CACHESIM=1 needs valgrind (apt-get install valgrind)" >&2; exit 1; }
    VISITORS=${2:-20000}
    RUNS=${3:-1}
    RULES=${4:-dwell}
    echo "core, $VISITORS visitors, $RULES rules, $RUNS run(s) under callgrind's cache simulation (D1 32 KB, LL 2 MB); old = $OLD, new = working tree"
    # With BATCH set the events go through `process(batch:)` (one toggle only: a second,
    # nested one would turn the collection off inside the first).
    toggle='*PartitionProcessorV7process_9arrivedAt8position*'
    [ -n "${BATCH:-}" ] && toggle='*PartitionProcessorV7process5batch*'
    for side in old new; do
        root=$ROOT; [ "$side" = old ] && root="$WORK/old"
        cp "$WORK/$side-build/release/core-ab" "$WORK/$side-stripped"
        strip -g "$WORK/$side-stripped"
        valgrind --tool=callgrind --cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=2097152,16,64 \
            --toggle-collect="$toggle" \
            --callgrind-out-file="$WORK/$side.cachesim" "$WORK/$side-stripped" "$root" "$VISITORS" "$RUNS" "$RULES" \
            > "$WORK/$side.cachesim.out" 2>/dev/null &
    done
    wait
    declare -A misses
    for side in old new; do
        events=$(sed -E 's/.*\(([0-9]+) events.*/\1/' "$WORK/$side.cachesim.out")
        # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw (collected inside process only)
        read -r ir d1r d1w llr llw < <(awk '/^summary:/ { print $2, $6, $7, $9, $10 }' "$WORK/$side.cachesim")
        misses[$side]=$(awk -v l="$((llr + llw))" -v e="$((events * RUNS))" 'BEGIN { printf "%.3f", l / e }')
        awk -v s="$side" -v i="$ir" -v d="$((d1r + d1w))" -v l="$((llr + llw))" -v e="$((events * RUNS))" \
            'BEGIN { printf "%s: per event %.0f instructions, %.2f first-level data misses, %.3f last-level data misses\n", s, i / e, d / e, l / e }'
    done
    echo "last-level data misses new/old $(awk -v a="${misses[new]}" -v b="${misses[old]}" 'BEGIN { printf "%.3f", a / b }')"
    exit 0
fi

if [ -n "${PAIRS:-}" ]; then
    # Side by side: old and new at the same time, one on each core, swapping cores every
    # pair, so that what slows this shared machine down slows both (one after the other,
    # the same binary against itself drifted by up to 20 %; side by side, 1-7 %).
    command -v taskset >/dev/null || { echo "PAIRS=1 needs taskset (util-linux)" >&2; exit 1; }
    PAIRS_N=${3:-6}
    RUNS=${4:-3}
    RULES=${5:-dwell}
    echo "core, $VISITORS visitors, $RULES rules, $PAIRS_N pairs side by side, best of $RUNS runs each; old = $OLD, new = working tree"
    ratios=()
    for pair in $(seq "$PAIRS_N"); do
        if [ $((pair % 2)) = 0 ]; then co=0; cn=1; else co=1; cn=0; fi
        taskset -c "$co" "$WORK/old-build/release/core-ab" "$WORK/old" "$VISITORS" "$RUNS" "$RULES" > "$WORK/pair-old.out" &
        taskset -c "$cn" "$WORK/new-build/release/core-ab" "$ROOT" "$VISITORS" "$RUNS" "$RULES" > "$WORK/pair-new.out"
        wait
        o=$(cut -d' ' -f1 "$WORK/pair-old.out"); n=$(cut -d' ' -f1 "$WORK/pair-new.out")
        r=$(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.3f", a / b }')
        ratios+=("$r")
        echo "pair $pair  old $o  new $n  new/old $r"
    done
    printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END { printf "median new/old %.3f (%d pairs)\n", NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2, NR }'
    exit 0
fi

if [ -n "${CALLGRIND:-}" ]; then
    command -v valgrind >/dev/null || { echo "CALLGRIND=1 needs valgrind (apt-get install valgrind)" >&2; exit 1; }
    RUNS=${3:-1}
    RULES=${4:-dwell}
    echo "core, $VISITORS visitors, $RULES rules, $RUNS run(s) under callgrind; old = $OLD, new = working tree"
    declare -A per_event
    for side in old new; do
        root=$ROOT; [ "$side" = old ] && root="$WORK/old"
        # valgrind 3.19 cannot read the toolchain's DWARF 5 debug information: run a copy without it.
        cp "$WORK/$side-build/release/core-ab" "$WORK/$side-stripped"
        strip -g "$WORK/$side-stripped"
        out=$(valgrind --tool=callgrind --callgrind-out-file="$WORK/$side.callgrind" "$WORK/$side-stripped" "$root" "$VISITORS" "$RUNS" "$RULES" 2>/dev/null)
        events=$(sed -E 's/.*\(([0-9]+) events.*/\1/' <<< "$out")
        total=$(callgrind_annotate --inclusive=yes "$WORK/$side.callgrind" 2>/dev/null \
            | awk '/PartitionProcessorV7process(_9arrivedAt8position|5batchSay)/ && !n++ { gsub(",", "", $1); print $1 }')
        per_event[$side]=$((total / (events * RUNS)))
        echo "$side: ${per_event[$side]} instructions per event in PartitionProcessor.process ($events events x $RUNS; profile: $WORK/$side.callgrind)"
    done
    echo "new/old $(awk -v a="${per_event[new]}" -v b="${per_event[old]}" 'BEGIN { printf "%.3f", a / b }')"
    exit 0
fi

echo "core, $VISITORS visitors, $RULES rules, best of $RUNS runs per round; old = $OLD, new = working tree"
for round in $(seq "$ROUNDS"); do
    old=$("$WORK/old-build/release/core-ab" "$WORK/old" "$VISITORS" "$RUNS" "$RULES")
    new=$("$WORK/new-build/release/core-ab" "$ROOT" "$VISITORS" "$RUNS" "$RULES")
    o=${old%% *}; n=${new%% *}
    printf 'round %s  old %s\n          new %s\n          new/old %s\n' "$round" "$old" "$new" \
        "$(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.2f", a / b }')"
done
