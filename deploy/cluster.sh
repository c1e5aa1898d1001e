#!/usr/bin/env bash
# A Connect cluster on one machine: a throwaway PostgreSQL, one shared data directory, N nodes of the same server
# and haproxy in front of them (round robin, no stickiness), so that cluster mode can be tried and tested, nodes
# killed and brought back, without any cloud.
#
#   deploy/cluster.sh start N          build the server, start everything, wait until every node is ready; prints
#                                      CONNECT_URL=http://127.0.0.1:<lb port> and one "NODE <name> <pid> <url>" per node
#   deploy/cluster.sh kill NAME        SIGKILL a node (and its process group), like a machine that dies
#   deploy/cluster.sh stop NAME        SIGTERM, wait for a graceful exit, SIGKILL after CONNECT_CLUSTER_STOP_TIMEOUT
#   deploy/cluster.sh restart NAME     start a node again on its own ports and settings, wait until ready, print its NODE line
#   deploy/cluster.sh status           CONNECT_URL and "NODE <name> <pid|-> <url> <ready|up|down>" per node
#   deploy/cluster.sh logs NAME [N]    the last N lines (default 100) of a node's log, or of "haproxy" or "postgres"
#   deploy/cluster.sh down [--keep]    stop everything; remove the state directory unless --keep (or CONNECT_CLUSTER_KEEP=1)
#   deploy/cluster.sh haproxy-config N print the load balancer configuration for N nodes (the ports of a running
#                                      cluster, else of CONNECT_CLUSTER_BASE_PORT or 20000); starts nothing
#
# Environment:
#   CONNECT_CLUSTER_DIR            state directory: ports, pids, logs, haproxy.cfg, PostgreSQL data, the shared data
#                                  directory, the published server (default /tmp/connect-cluster)
#   CONNECT_CLUSTER_BASE_PORT      fixed ports: load balancer = base, PostgreSQL = base+1, node i HTTP = base+100+i,
#                                  silo = base+200+i (default: free ports picked at random between 20000 and 32000)
#   CONNECT_SERVER_DLL             a built connect.dll to run instead of publishing src/Connect.Server into the state dir
#   CONNECT_NODE_COMMAND           the whole node command line instead of "dotnet <dll>" (a stand-in for tests); it gets
#                                  the same environment as a real node
#   CONNECT_CLUSTER_READY_TIMEOUT  seconds to wait for a node to be ready (default 180)
#   CONNECT_CLUSTER_STOP_TIMEOUT   seconds a stopping node gets before SIGKILL (default Cluster__DrainSeconds + 30)
# Every node gets the caller's whole environment (CONNECT_BOOTSTRAP_SECRETKEY, Sandbox__Mode, ...), as it was at
# `start` with the environment of a later `restart` on top, plus the cluster settings this script owns.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly repo
readonly state=${CONNECT_CLUSTER_DIR:-/tmp/connect-cluster}
readonly ready_timeout=${CONNECT_CLUSTER_READY_TIMEOUT:-180}
# The server drains for Cluster__DrainSeconds on SIGTERM; past that a shutdown that hangs (FACTS: ~2 min when
# PostgreSQL is unreachable) is cut short.
readonly stop_timeout=${CONNECT_CLUSTER_STOP_TIMEOUT:-$((${Cluster__DrainSeconds:-30} + 30))}
readonly marker=$state/cluster.env
# Set from the state files (cluster.env, nodes/NAME/node.env) by load_cluster and load_node.
nodes=0 base_port="" lb_port="" pg_port="" node_command="" http_port="" silo_port="" taken=" "

say() { printf 'cluster: %s\n' "$*" >&2; }
die() {
  printf 'cluster: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# --- processes --------------------------------------------------------------------------------------------------

# proc_field PID N: field N (3 or more) of /proc/PID/stat, read after the command name, which may hold spaces.
proc_field() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086 # splitting the fields is the point
  set -- $stat
  printf '%s' "${*:$(($2 - 2)):1}"
}

# The kernel's start time of a process: with the pid it names one process for good, so that a pid reused after the
# original exited is never mistaken for ours (and never signalled).
start_time() { proc_field "$1" 22; }

# A zombie has exited; only its parent has not reaped it yet.
exited() { [ "$(proc_field "$1" 3)" = Z ]; }

# alive PIDFILE: true when the process recorded there (pid and start time) still runs; prints its pid.
alive() {
  local pid recorded now
  [ -f "$1" ] || return 1
  read -r pid recorded <"$1" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  now=$(start_time "$pid") || return 1
  [ -z "$recorded" ] || [ "$now" = "$recorded" ] || return 1
  ! exited "$pid" || return 1
  printf '%s' "$pid"
}

# spawn PIDFILE LOGFILE WORKDIR COMMAND: runs COMMAND (a shell command line) in its own session, so that it outlives
# this script and the terminal, and so that its whole process group can be signalled; records "pid starttime".
# The environment is the caller's, as prepared by the (sub)shell that calls spawn.
spawn() {
  local pidfile=$1 log=$2 dir=$3 command=$4 deadline pid
  rm -f "$pidfile" "$pidfile.new"
  # The program writes its own pid before exec'ing the command: setsid may fork, and then $! would be the wrong pid.
  # shellcheck disable=SC2016 # $$, $1 and $2 belong to the inner shell
  (cd "$dir" && exec setsid bash -c 'echo $$ >"$1"; eval "exec $2"' connect-spawn "$pidfile.new" "$command" \
    </dev/null >>"$log" 2>&1) &
  deadline=$((SECONDS + 10))
  until [ -s "$pidfile.new" ]; do
    ((SECONDS < deadline)) || die "could not start: $command (see $log)"
    sleep 0.05
  done
  read -r pid <"$pidfile.new"
  printf '%s %s\n' "$pid" "$(start_time "$pid" || true)" >"$pidfile"
  rm -f "$pidfile.new"
  printf '%s' "$pid"
}

# wait_exit PID SECONDS: true when the process is gone within the time.
wait_exit() {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    ! exited "$1" || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# terminate PIDFILE WHAT TIMEOUT: SIGTERM, then SIGKILL to the whole process group after TIMEOUT seconds.
terminate() {
  local pidfile=$1 what=$2 timeout=$3 pid
  if ! pid=$(alive "$pidfile"); then
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_exit "$pid" "$timeout"; then
    say "$what (pid $pid) did not exit within ${timeout}s of SIGTERM; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait_exit "$pid" 10 || say "$what (pid $pid) survived SIGKILL"
  fi
  # Whatever the process left in its group (it was the leader) goes with it.
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# http_status PORT PATH: the status code of GET PATH on 127.0.0.1:PORT, or nothing. Plain bash, so that neither curl
# nor wget is needed; the read timeout covers a node that accepts connections but never answers (SIGSTOP).
http_status() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
    IFS=' ' read -r -t 5 _ code _ <&3 || exit 1
    printf '%s' "$code"
  ) 2>/dev/null || true
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
  command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
  return 1
}

# --- state ------------------------------------------------------------------------------------------------------

load_cluster() {
  [ -f "$marker" ] || die "no cluster in $state (deploy/cluster.sh start N)"
  # shellcheck source=/dev/null
  source "$marker"
}

node_dir() { printf '%s/nodes/%s' "$state" "$1"; }

load_node() {
  if ! [[ $1 =~ ^node[0-9]+$ ]] || [ ! -f "$(node_dir "$1")/node.env" ]; then
    die "no node named '$1' (nodes: $(node_names | tr '\n' ' '))"
  fi
  # shellcheck source=/dev/null
  source "$(node_dir "$1")/node.env"
}

node_names() {
  local i
  for ((i = 1; i <= ${nodes:-0}; i++)); do printf 'node%d\n' "$i"; done
}

node_url() { printf 'http://127.0.0.1:%s' "$http_port"; }

# --- PostgreSQL -------------------------------------------------------------------------------------------------

pg_bin() {
  local dir
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    # The real directory: PATH may hold symlinks to some of the programs only (createdb is needed too).
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return
  fi
  while IFS= read -r dir; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { printf '%s' "$dir"; return; }
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  die "PostgreSQL server binaries (initdb, pg_ctl) are neither on PATH nor in /usr/lib/postgresql/*/bin: apt-get install postgresql"
}

# PostgreSQL refuses to run as root: as root it runs as the postgres account (created if missing).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

start_postgres() {
  local bin pgdir=$state/pg
  bin=$(pg_bin)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  mkdir -p "$pgdir"
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$pgdir"
  as_pg test -w "$pgdir" || die "the PostgreSQL account cannot write $pgdir: a parent directory is closed to it; choose CONNECT_CLUSTER_DIR elsewhere (e.g. under /tmp)"
  say "PostgreSQL: initdb ($bin)"
  as_pg "$bin/initdb" -D "$pgdir/data" -U connect --auth=trust -E UTF8 --no-locale --no-sync >"$state/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 20 "$state/initdb.log")"
  # Durability off (fsync, full page writes): the database is as throwaway as the cluster. Loopback only, trust auth.
  say "PostgreSQL: starting on 127.0.0.1:$pg_port"
  if ! as_pg setsid -w "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
    -o "-p $pg_port -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >>"$state/initdb.log" 2>&1; then
    die "PostgreSQL did not start: $(tail -n 20 "$pgdir/postgres.log" 2>/dev/null)"
  fi
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U connect connect >>"$state/initdb.log" 2>&1 ||
    die "could not create database connect: $(tail -n 5 "$state/initdb.log")"
}

postgres_pid() {
  local pid
  [ -f "$state/pg/data/postmaster.pid" ] || return 1
  read -r pid <"$state/pg/data/postmaster.pid" || return 1
  kill -0 "$pid" 2>/dev/null && ! exited "$pid" || return 1
  printf '%s' "$pid"
}

stop_postgres() {
  local pid bin
  pid=$(postgres_pid) || return 0
  bin=$(pg_bin)
  # Fast shutdown: sessions are cut, nothing is worth waiting for.
  if ! as_pg "$bin/pg_ctl" -D "$state/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
    say "PostgreSQL (pid $pid) did not stop; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# --- haproxy ----------------------------------------------------------------------------------------------------

# Round robin per request and no cookie or stick table: any node takes any request (the front end finds the
# session's process itself). Health checks follow readiness, so a draining or starting node gets no traffic.
write_haproxy_config() {
  local i
  cat <<EOF
# Generated by deploy/cluster.sh for the cluster in $state.
global
    # No maxconn: haproxy derives it from the file descriptor limit, which a fixed number could exceed.
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    # Only errors and abnormal requests: a benchmark through the balancer would otherwise fill the disk.
    option dontlog-normal
    # A request that could not connect to a node (just killed), or whose node died before answering, is tried again
    # on another one: retried only when it is idempotent (below), so nothing runs twice.
    retries 2
    option redispatch 1
    retry-on all-retryable-errors
    timeout connect 3s
    timeout http-request 30s
    timeout http-keep-alive 60s
    timeout client 5m
    # Content may answer slowly (Scheduler:ReadTimeout is an hour by default) and WebSockets stay open for hours.
    timeout server 1h
    timeout tunnel 1h
    timeout client-fin 30s
    timeout server-fin 30s

frontend connect
    bind 127.0.0.1:$lb_port
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    default_backend nodes

backend nodes
    balance roundrobin
    acl idempotent method GET HEAD OPTIONS
    http-request disable-l7-retry unless idempotent
    option httpchk
    http-check send meth GET uri /__health__/ready ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server check inter 1s fastinter 500ms downinter 1s rise 1 fall 2
EOF
  for ((i = 1; i <= nodes; i++)); do
    printf '    server node%d 127.0.0.1:%s\n' "$i" "$(node_port "$i" http)"
  done
}

# node_port I http|silo: a node's port from its saved settings, or the fixed layout when there are none yet.
node_port() {
  local file
  file="$(node_dir "node$1")/node.env"
  if [ -f "$file" ]; then
    (
      # shellcheck source=/dev/null
      source "$file"
      if [ "$2" = http ]; then printf '%s' "$http_port"; else printf '%s' "$silo_port"; fi
    )
  elif [ "$2" = http ]; then
    printf '%s' $((base_port + 100 + $1))
  else
    printf '%s' $((base_port + 200 + $1))
  fi
}

start_haproxy() {
  local pid
  command -v haproxy >/dev/null || die "haproxy is not installed: apt-get install haproxy"
  write_haproxy_config >"$state/haproxy.cfg"
  haproxy -c -q -f "$state/haproxy.cfg" >"$state/haproxy.log" 2>&1 ||
    die "haproxy rejects $state/haproxy.cfg: $(cat "$state/haproxy.log")"
  # -db: stay in the foreground (spawn detaches it) and log to the log file.
  pid=$(spawn "$state/haproxy.pid" "$state/haproxy.log" "$state" "haproxy -db -f $(printf '%q' "$state/haproxy.cfg")")
  say "haproxy: pid $pid, http://127.0.0.1:$lb_port"
}

# --- nodes ------------------------------------------------------------------------------------------------------

launch_node() {
  local name=$1 dir
  load_node "$name"
  dir=$(node_dir "$name")
  mkdir -p "$dir/scratch"
  printf '=== %s: starting %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" >>"$dir/node.log"
  (
    # The environment saved at `start`, for what this caller does not set itself, then the cluster's own settings.
    declare -A present=()
    while IFS= read -r -d '' kv; do present[${kv%%=*}]=1; done < <(env -0)
    if [ -f "$state/caller.env" ]; then
      while IFS= read -r -d '' kv; do
        [ -n "${present[${kv%%=*}]:-}" ] || export "${kv?}" 2>/dev/null || true
      done <"$state/caller.env"
    fi
    export ASPNETCORE_URLS="http://127.0.0.1:$http_port"
    export Storage__Provider=postgres
    export Storage__ConnectionString="Host=127.0.0.1;Port=$pg_port;Database=connect;Username=connect"
    export Connect__DataDir="$state/data"
    export Cluster__NodeName="$name"
    export Cluster__ScratchDir="$dir/scratch"
    export Cluster__InternalUrl="http://127.0.0.1:$http_port"
    export Orleans__SiloPort="$silo_port"
    # Loopback: every node of this cluster is on this machine (the server's cluster default is the first
    # non-loopback address, which a laptop may not have or may change).
    export Orleans__AdvertisedAddress=127.0.0.1
    # One key for all nodes from the start, rather than a race to create the key file on the shared directory.
    [ -n "${Cluster__Secret:-}" ] || Cluster__Secret=$(cat "$state/cluster.secret")
    export Cluster__Secret
    export Orleans__ClusterId="${Orleans__ClusterId:-connect-local}"
    export Orleans__ServiceId="${Orleans__ServiceId:-connect}"
    export Connect__ServerUrl="${Connect__ServerUrl:-http://127.0.0.1:$lb_port}"
    export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
    spawn "$dir/pid" "$dir/node.log" "$dir" "$node_command" >/dev/null
  )
}

# wait_ready NAME DEADLINE (in $SECONDS): fails, with the node's log tail, if it exits or the deadline passes.
wait_ready() {
  local name=$1 deadline=$2 dir code=""
  load_node "$name"
  dir=$(node_dir "$name")
  while true; do
    if ! alive "$dir/pid" >/dev/null; then
      say "$name exited before it was ready; the end of $dir/node.log:"
      tail -n 40 "$dir/node.log" | sed 's/^/    /' >&2
      die "$name did not start (deploy/cluster.sh down removes the rest)"
    fi
    code=$(http_status "$http_port" /__health__/ready)
    [ "$code" != 200 ] || return 0
    if ((SECONDS >= deadline)); then
      say "$name is not ready after ${ready_timeout}s (last /__health__/ready: ${code:-no answer}); the end of $dir/node.log:"
      tail -n 40 "$dir/node.log" | sed 's/^/    /' >&2
      die "$name did not become ready (CONNECT_CLUSTER_READY_TIMEOUT; deploy/cluster.sh down removes the cluster)"
    fi
    sleep 0.5
  done
}

node_line() {
  local pid
  load_node "$1"
  pid=$(alive "$(node_dir "$1")/pid") || pid=-
  printf 'NODE %s %s %s\n' "$1" "$pid" "$(node_url)"
}

stop_node() {
  load_node "$1"
  if ! alive "$(node_dir "$1")/pid" >/dev/null; then
    say "$1 is not running"
    return 0
  fi
  say "stopping $1 (SIGTERM; SIGKILL after ${stop_timeout}s)"
  terminate "$(node_dir "$1")/pid" "$1" "$stop_timeout"
  say "$1 stopped"
}

kill_node() {
  local pid
  load_node "$1"
  if ! pid=$(alive "$(node_dir "$1")/pid"); then
    say "$1 is not running"
    return 0
  fi
  # The whole group: the node and the content processes it started, as when its machine dies.
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  wait_exit "$pid" 10 || die "$1 (pid $pid) survived SIGKILL"
  rm -f "$(node_dir "$1")/pid"
  say "$1 killed (pid $pid)"
}

# --- commands ---------------------------------------------------------------------------------------------------

# A random free port below the kernel's ephemeral range (32768 and up), so that outgoing connections do not take it
# later, and not in $taken (the ports picked so far).
next_port() {
  local p tries=0
  while true; do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    if [[ $taken != *" $p "* ]] && ! port_in_use "$p"; then
      printf '%s' "$p"
      return
    fi
    ((++tries < 500)) || die "found no free port between 20000 and 32000"
  done
}

pick_ports() {
  # nodes is set; sets base_port, lb_port, pg_port and writes every node's ports.
  local i port http silo
  taken=" "
  if [ -n "${CONNECT_CLUSTER_BASE_PORT:-}" ]; then
    if ! [[ $CONNECT_CLUSTER_BASE_PORT =~ ^[0-9]+$ ]] || ((CONNECT_CLUSTER_BASE_PORT < 1024 || CONNECT_CLUSTER_BASE_PORT + 200 + nodes > 65535)); then
      die "CONNECT_CLUSTER_BASE_PORT must be a port between 1024 and $((65535 - 200 - nodes))"
    fi
    base_port=$CONNECT_CLUSTER_BASE_PORT
    lb_port=$base_port
    pg_port=$((base_port + 1))
    for port in "$lb_port" "$pg_port"; do
      ! port_in_use "$port" || die "port $port (from CONNECT_CLUSTER_BASE_PORT) is in use"
    done
    for ((i = 1; i <= nodes; i++)); do
      for port in $((base_port + 100 + i)) $((base_port + 200 + i)); do
        ! port_in_use "$port" || die "port $port (from CONNECT_CLUSTER_BASE_PORT) is in use"
      done
      write_node_env "$i" $((base_port + 100 + i)) $((base_port + 200 + i))
    done
    return
  fi
  base_port=""
  lb_port=$(next_port)
  taken="$taken$lb_port "
  pg_port=$(next_port)
  taken="$taken$pg_port "
  for ((i = 1; i <= nodes; i++)); do
    http=$(next_port)
    taken="$taken$http "
    silo=$(next_port)
    taken="$taken$silo "
    write_node_env "$i" "$http" "$silo"
  done
}

write_node_env() {
  mkdir -p "$(node_dir "node$1")"
  printf 'http_port=%s\nsilo_port=%s\n' "$2" "$3" >"$(node_dir "node$1")/node.env"
}

cmd_start() {
  local count=${1:-} name deadline
  [[ $count =~ ^[1-9][0-9]?$ ]] || die "usage: deploy/cluster.sh start N (1 to 99 nodes)"
  [[ $state =~ ^/[A-Za-z0-9_./+-]+$ ]] || die "CONNECT_CLUSTER_DIR must be an absolute path of letters, digits and _./+- (it is passed through shells and configuration files)"
  if [ -f "$marker" ]; then
    local running=""
    load_cluster
    for name in $(node_names); do alive "$(node_dir "$name")/pid" >/dev/null && running="$running $name"; done
    alive "$state/haproxy.pid" >/dev/null && running="$running haproxy"
    postgres_pid >/dev/null && running="$running postgres"
    [ -z "$running" ] || die "a cluster is running in $state ($running ); deploy/cluster.sh down first"
    die "$state holds a stopped cluster; deploy/cluster.sh down removes it (or choose another CONNECT_CLUSTER_DIR)"
  fi
  [ ! -e "$state" ] || [ -z "$(ls -A "$state")" ] || die "$state exists and is not a cluster's state directory; remove it or choose another CONNECT_CLUSTER_DIR"
  command -v setsid >/dev/null || die "setsid (util-linux) is missing"
  command -v haproxy >/dev/null || die "haproxy is not installed: apt-get install haproxy"
  pg_bin >/dev/null

  mkdir -p "$state" "$state/data" "$state/nodes"
  chmod 755 "$state"
  nodes=$count
  pick_ports
  # The marker goes first: from here on, `down` can clean up whatever a failed start leaves (the node command is
  # added once the server is built).
  {
    printf 'nodes=%q\n' "$nodes"
    printf 'base_port=%q\n' "$base_port"
    printf 'lb_port=%q\n' "$lb_port"
    printf 'pg_port=%q\n' "$pg_port"
  } >"$marker"

  local node_command
  if [ -n "${CONNECT_NODE_COMMAND:-}" ]; then
    node_command=$CONNECT_NODE_COMMAND
  else
    local dll=${CONNECT_SERVER_DLL:-}
    if [ -z "$dll" ]; then
      command -v dotnet >/dev/null || die "dotnet is not on PATH (install the .NET 10 SDK, or set CONNECT_SERVER_DLL/CONNECT_NODE_COMMAND)"
      say "publishing src/Connect.Server into $state/server (log: $state/build.log)"
      dotnet publish "$repo/src/Connect.Server" -c Release -o "$state/server" --nologo >"$state/build.log" 2>&1 ||
        die "the build failed: $(tail -n 30 "$state/build.log")"
      dll=$state/server/connect.dll
    fi
    [ -f "$dll" ] || die "no server at $dll"
    node_command="dotnet $(printf '%q' "$dll")"
  fi

  printf 'node_command=%q\n' "$node_command" >>"$marker"
  # The caller's environment for `restart` from another shell; it may hold secrets.
  (umask 077 && env -0 >"$state/caller.env" && head -c 32 /dev/urandom | base64 -w0 >"$state/cluster.secret")

  start_postgres
  start_haproxy
  for name in $(node_names); do
    launch_node "$name"
    load_node "$name"
    say "$name: $(node_url), silo port $silo_port, log $(node_dir "$name")/node.log"
  done
  deadline=$((SECONDS + ready_timeout))
  for name in $(node_names); do
    wait_ready "$name" "$deadline"
    say "$name is ready"
  done
  until [ "$(http_status "$lb_port" /__ping__)" = 200 ]; do
    alive "$state/haproxy.pid" >/dev/null || die "haproxy exited: $(tail -n 20 "$state/haproxy.log")"
    ((SECONDS < deadline)) || die "the load balancer does not answer /__ping__ on port $lb_port (log: $state/haproxy.log)"
    sleep 0.2
  done
  printf 'CONNECT_URL=http://127.0.0.1:%s\n' "$lb_port"
  for name in $(node_names); do node_line "$name"; done
}

cmd_status() {
  local name pid health
  load_cluster
  printf 'CONNECT_URL=http://127.0.0.1:%s\n' "$lb_port"
  for name in $(node_names); do
    load_node "$name"
    if pid=$(alive "$(node_dir "$name")/pid"); then
      if [ "$(http_status "$http_port" /__health__/ready)" = 200 ]; then health=ready; else health=up; fi
    else
      pid=- health=down
    fi
    printf 'NODE %s %s %s %s\n' "$name" "$pid" "$(node_url)" "$health"
  done
  if pid=$(alive "$state/haproxy.pid"); then health=up; else pid=- health=down; fi
  printf 'HAPROXY %s http://127.0.0.1:%s %s\n' "$pid" "$lb_port" "$health"
  if pid=$(postgres_pid); then health=up; else pid=- health=down; fi
  printf 'POSTGRES %s 127.0.0.1:%s %s\n' "$pid" "$pg_port" "$health"
}

cmd_restart() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: deploy/cluster.sh restart NAME"
  load_cluster
  load_node "$name"
  postgres_pid >/dev/null || say "warning: PostgreSQL is not running; $name will not become ready"
  stop_node "$name"
  launch_node "$name"
  wait_ready "$name" $((SECONDS + ready_timeout))
  say "$name is ready"
  node_line "$name"
}

cmd_down() {
  local keep=${CONNECT_CLUSTER_KEEP:-0} name
  [ "${1:-}" != --keep ] || keep=1
  if [ ! -f "$marker" ]; then
    say "no cluster in $state; nothing to do"
    return 0
  fi
  load_cluster
  # Nodes first, in parallel, while PostgreSQL is still up (a node without its database is slow to stop).
  for name in $(node_names); do
    [ -f "$(node_dir "$name")/node.env" ] || continue
    stop_node "$name" &
  done
  wait
  terminate "$state/haproxy.pid" haproxy 10
  stop_postgres
  if [ "$keep" = 1 ]; then
    say "stopped; state kept in $state"
  else
    rm -rf "$state"
    say "stopped and removed $state"
  fi
}

cmd_logs() {
  local name=${1:-} lines=${2:-100} file
  load_cluster
  case $name in
    haproxy) file=$state/haproxy.log ;;
    postgres) file=$state/pg/postgres.log ;;
    *)
      load_node "$name"
      file=$(node_dir "$name")/node.log
      ;;
  esac
  [ -f "$file" ] || die "no log at $file"
  tail -n "$lines" "$file"
}

cmd_haproxy_config() {
  local count=${1:-}
  [[ $count =~ ^[1-9][0-9]?$ ]] || die "usage: deploy/cluster.sh haproxy-config N"
  if [ -f "$marker" ]; then
    load_cluster
  else
    base_port=${CONNECT_CLUSTER_BASE_PORT:-20000}
    lb_port=$base_port
  fi
  nodes=$count
  write_haproxy_config
}

main() {
  local command=${1:-}
  [ $# -eq 0 ] || shift
  case $command in
    start) cmd_start "$@" ;;
    status) cmd_status ;;
    kill | stop)
      [ -n "${1:-}" ] || die "usage: deploy/cluster.sh $command NAME"
      load_cluster
      "${command}_node" "$1"
      ;;
    restart) cmd_restart "$@" ;;
    down) cmd_down "$@" ;;
    logs) cmd_logs "$@" ;;
    haproxy-config) cmd_haproxy_config "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
