#!/usr/bin/env bash
# What a page the process touches for the first time costs on this machine: maps MB
# megabytes (default 512), writes one byte per 4 KB page, and reports the rate, three times
# over fresh mappings, with 4 KB pages and with huge pages advised (as the hot visitor
# states are). On a virtual machine whose host backs guest memory only once the guest
# first uses it, the first round over memory the guest never used is many times slower
# than later rounds over memory it freed and took back: the core's page faults at
# 1,000,000 visitors cost what that first-round rate says.
#   scripts/fresh-memory.sh [MB]
set -euo pipefail
MB=${1:-512}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/touch.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    size_t bytes = (size_t)atol(argv[1]) << 20;
    int huge = strcmp(argv[2], "huge") == 0;
    for (int round = 1; round <= 3; round++) {
        char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        if (huge) madvise(p, bytes, MADV_HUGEPAGE);
        double start = now();
        for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
        double seconds = now() - start;
        printf("%s pages, round %d: %zu MB in %.3f s, %.2f GB/s\n", huge ? "huge" : "4 KB", round, bytes >> 20, seconds, (double)(bytes >> 20) / 1024 / seconds);
        munmap(p, bytes);
    }
    return 0;
}
C
CC=${CC:-$(command -v clang || command -v cc)}
"$CC" -O2 -o "$WORK/touch" "$WORK/touch.c"
"$WORK/touch" "$MB" 4k
"$WORK/touch" "$MB" huge
