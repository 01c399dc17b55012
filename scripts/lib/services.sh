# Shell helpers to start the embedded Tansu broker and a project-local PostgreSQL on free
# loopback ports. Sourced by scripts/demo.sh and friends; the Swift test support does the
# same in-process (Sources/BeckonTestSupport).
#
# Every process started here is recorded in "$RUN_DIR/pids" so a later run can clean up
# after an interrupted one.

PROJECT_ROOT=${PROJECT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TANSU_BIN="$PROJECT_ROOT/.deps/tansu"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until a TCP port on 127.0.0.1 accepts connections (or fails after $2 seconds).
wait_for_port() {
  local port=$1 limit=${2:-30} waited=0
  until python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; do
    sleep 0.2
    waited=$((waited + 1))
    if [ $waited -gt $((limit * 5)) ]; then echo "nothing listens on port $port after ${limit}s" >&2; return 1; fi
  done
}

# Kills what an earlier, interrupted run left behind in RUN_DIR.
cleanup_previous_run() {
  local dir=$1
  if [ -f "$dir/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done <"$dir/pids"
  fi
  rm -rf "$dir"
}

# start_tansu RUN_DIR -> sets TANSU_PORT
start_tansu() {
  local dir=$1
  TANSU_PORT=$(free_port)
  "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" --storage-engine "memory://tansu/" \
    >"$dir/tansu.log" 2>&1 &
  echo $! >>"$dir/pids"
  wait_for_port "$TANSU_PORT" 30 || { tail -20 "$dir/tansu.log" >&2; return 1; }
}

# start_postgres RUN_DIR -> sets PG_PORT and PG_URL. PostgreSQL refuses to run as root,
# so as root it runs as the 'postgres' system user that Debian's package creates.
start_postgres() {
  local dir=$1 data="$1/pgdata" as=()
  PG_PORT=$(free_port)
  mkdir -p "$data"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$dir"
    chown -R postgres: "$data"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  "${as[@]}" "$PG_BIN/initdb" -D "$data" -A trust -U beckon -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { tail -20 "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$PG_BIN/postgres" -D "$data" -p "$PG_PORT" -k "$data" -c listen_addresses=127.0.0.1 \
    >"$dir/postgres.log" 2>&1 &
  echo $! >>"$dir/pids"
  wait_for_port "$PG_PORT" 30 || { tail -20 "$dir/postgres.log" >&2; return 1; }
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do sleep 0.2; done
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U beckon beckon
  PG_URL="postgresql://beckon@127.0.0.1:$PG_PORT/beckon"
}

# Stops every process recorded in RUN_DIR/pids: politely, then by force after 10 s.
stop_services() {
  local dir=$1 pid
  [ -f "$dir/pids" ] || return 0
  while read -r pid; do
    [ -n "$pid" ] || continue
    # PostgreSQL: SIGINT is its fast shutdown; Tansu ends on TERM.
    kill -INT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done <"$dir/pids"
  for _ in $(seq 100); do
    local alive=0
    while read -r pid; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done <"$dir/pids"
    [ $alive = 0 ] && break
    sleep 0.1
  done
  while read -r pid; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; done <"$dir/pids"
  rm -f "$dir/pids"
}
