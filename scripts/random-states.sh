#!/usr/bin/env bash
# How fast one core can visit visitor-sized states at random, on this machine: the memory
# side of the core benchmark, without the core. Lays out N states of 448 bytes (a
# `VisitorState`; line-aligned, huge pages advised and touched beforehand), then visits
# them in a random order, ten visits per state (the benchmark's mix has about ten events
# per visitor). A visit reads one word of each of LINES lines of its state and writes one,
# after WORK nanoseconds (about) of arithmetic that does not depend on memory; the state
# DISTANCE visits ahead is prefetched, line by line, as the core does. Prints visits/s for
# each combination, and what the arithmetic alone allows.
#   scripts/random-states.sh [N ...]          (default: 2000 100000 1000000)
#   LINES="7 6" DISTANCE="0 1 2 4" WORK="0 300" scripts/random-states.sh 1000000
# Single runs drift by several percent on a shared machine: compare rows of one run.
set -euo pipefail
COUNTS=${*:-2000 100000 1000000}
LINES=${LINES:-7 6 5 4}
DISTANCE=${DISTANCE:-0 1 2 4}
WORK=${WORK:-0 300}
WORKDIR=$(mktemp -d)
trap 'rm -rf "$WORKDIR"' EXIT
cat > "$WORKDIR/visit.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static uint64_t next(uint64_t *s) {  // splitmix64
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// About `iterations` dependent multiply-adds, kept in registers.
static inline uint64_t work(uint64_t x, long iterations) {
    for (long i = 0; i < iterations; i++) { x = x * 6364136223846793005ull + 1442695040888963407ull; __asm__ volatile("" : "+r"(x)); }
    return x;
}

int main(int argc, char **argv) {
    size_t n = strtoul(argv[1], 0, 10), stride = strtoul(argv[2], 0, 10);
    int lines = atoi(argv[3]), distance = atoi(argv[4]);
    double workNanos = atof(argv[5]);
    size_t visits = n * 10, bytes = (n * stride + (2u << 20)) & ~((size_t)(2u << 20) - 1);
    char *states = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (states == MAP_FAILED) { perror("mmap"); return 1; }
    madvise(states, bytes, MADV_HUGEPAGE);
    memset(states, 1, bytes);
    uint32_t *order = malloc(visits * sizeof *order);
    uint64_t seed = 7;
    for (size_t i = 0; i < visits; i++) order[i] = (uint32_t)(next(&seed) % n);
    // Calibrate the arithmetic: iterations per nanosecond.
    double t0 = now();
    uint64_t sink = work(1, 100000000);
    double perNano = 100000000 / ((now() - t0) * 1e9);
    long iterations = (long)(workNanos * perNano);
    double best = 0;
    for (int round = 0; round < 3; round++) {
        double start = now();
        for (size_t i = 0; i < visits; i++) {
            if (distance > 0 && i + distance < visits) {
                const char *ahead = states + (size_t)order[i + distance] * stride;
                for (int l = 0; l < lines; l++) __builtin_prefetch(ahead + 64 * l, 1, 3);
            }
            sink = work(sink, iterations);
            char *s = states + (size_t)order[i] * stride;
            uint64_t sum = 0;
            for (int l = 0; l < lines; l++) sum += *(volatile uint64_t *)(s + 64 * l);
            *(uint64_t *)(s + 8) = sum + sink;
        }
        double rate = visits / (now() - start);
        if (rate > best) best = rate;
    }
    double workOnly = iterations > 0 ? 1e9 / workNanos : 0;
    printf("%9zu states  %d lines  distance %d  work %4.0f ns:  %6.2f M visits/s", n, lines, distance, workNanos, best / 1e6);
    if (workOnly > 0) printf("  (the work alone: %.2f M/s, %.0f%% of it)", workOnly / 1e6, 100 * best / workOnly);
    printf("\n");
    return 0;  // `sink` is stored into the states above, so the work is not optimised away
}
C
CC=${CC:-$(command -v clang || command -v cc)}
"$CC" -O2 -o "$WORKDIR/visit" "$WORKDIR/visit.c"
for n in $COUNTS; do
    for w in $WORK; do
        for d in $DISTANCE; do
            for l in $LINES; do "$WORKDIR/visit" "$n" 448 "$l" "$d" "$w"; done
        done
    done
done
