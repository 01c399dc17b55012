#!/usr/bin/env bash
# Builds librdkafka's own benchmark tool, examples/rdkafka_performance.c, from the same
# Debian trixie source package as the library, into .deps/librdkafka/bin. Used by
# scripts/bench-e2e.sh to measure the raw consume rate of a topic. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX="$ROOT/.deps/librdkafka"
TOOL="$PREFIX/bin/rdkafka_performance"
[ -x "$TOOL" ] && exit 0
[ -f "$PREFIX/lib/pkgconfig/rdkafka.pc" ] || { echo "librdkafka is not built yet: run scripts/setup.sh" >&2; exit 1; }
version=$(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --modversion rdkafka)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"
src_version=$(apt-cache showsrc librdkafka | awk '/^Version:/ {print $2}' | grep "^$version" | sort -V | tail -1)
[ -n "$src_version" ] || { echo "no librdkafka $version source package (scripts/setup.sh adds the trixie deb-src entry)" >&2; exit 1; }
(cd "$work" && apt-get source -qq "librdkafka=$src_version" >/dev/null)
srcdir=$(find "$work" -maxdepth 1 -type d -name "librdkafka-*" | head -1)
# The example includes the source tree's internal headers, which need configure's output.
(cd "$srcdir" && ./configure --prefix="$PREFIX" --disable-curl --disable-gssapi >"$work/configure.log" 2>&1) ||
  { tail -20 "$work/configure.log" >&2; exit 1; }
mkdir -p "$PREFIX/bin"
cc -O2 -I "$srcdir/src" "$srcdir/examples/rdkafka_performance.c" -o "$TOOL" \
  -L"$PREFIX/lib" -lrdkafka -lpthread -lm -Wl,-rpath,"$PREFIX/lib"
echo "built $TOOL (librdkafka $version)"
