#!/usr/bin/env bash
# Tests deploy/cluster.sh with stand-in nodes (tests/cluster/standin_node.py): a real PostgreSQL run as a non-root
# user and a real haproxy, but no Connect server, so that the script's lifecycle (start, kill, stop, restart, status,
# down), its port choice, its output and the environment it gives nodes are checked without cluster mode.
# Needs bash, python3, curl, haproxy and the PostgreSQL server binaries; takes about a minute. Ends with
# "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

script=deploy/cluster.sh
# Debian's interpreter when there is one: a version manager's shim would add a second to every node start.
python=$(command -v /usr/bin/python3 || command -v python3 || true)
standin="$python $PWD/tests/cluster/standin_node.py"
passed=0 failed=0
dirs=()

check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    printf 'ok   %3ss %s\n' "$SECONDS" "$what"
  else
    failed=$((failed + 1))
    printf 'FAIL %3ss %s\n' "$SECONDS" "$what"
  fi
}

new_dir() {
  local d
  d=$(mktemp -u /tmp/connect-cluster-test.XXXXXX)
  dirs+=("$d")
  printf '%s' "$d"
}

cleanup() {
  local d
  for d in "${dirs[@]}"; do
    CONNECT_CLUSTER_DIR=$d CONNECT_CLUSTER_STOP_TIMEOUT=3 "$script" down >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

for tool in "${python:-python3}" curl haproxy; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; echo "0 passed, 1 failed"; exit 1; }
done

get() { curl -sS --max-time 5 "$@"; }
code() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$1"; }
field() { awk -v n="$1" -v f="$2" '$1 == "NODE" && $2 == n { print $f }'; }
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
contains() { [[ $1 == *"$2"* ]]; }

# --- static checks -------------------------------------------------------------------------------------------------
check "bash -n" bash -n "$script"
if command -v shellcheck >/dev/null; then
  check "shellcheck deploy/cluster.sh" shellcheck "$script"
  check "shellcheck this test" shellcheck "$0"
fi
cfg=$(mktemp)
CONNECT_CLUSTER_DIR=$(new_dir) CONNECT_CLUSTER_BASE_PORT=21000 "$script" haproxy-config 3 >"$cfg"
check "haproxy accepts the generated configuration" haproxy -c -q -f "$cfg"
check "the configuration health-checks readiness" grep -q 'uri /__health__/ready' "$cfg"
check "the configuration balances round robin without stickiness" \
  bash -c "grep -q 'balance roundrobin' '$cfg' && ! grep -Eq '^[[:space:]]*(cookie|stick|hash-type|balance source)' '$cfg'"
check "the configuration lists three nodes on the fixed ports" \
  bash -c "grep -q 'server node1 127.0.0.1:21101' '$cfg' && grep -q 'server node3 127.0.0.1:21103' '$cfg' && grep -q 'bind 127.0.0.1:21000' '$cfg'"
rm -f "$cfg"

# --- an empty state ------------------------------------------------------------------------------------------------
export CONNECT_CLUSTER_DIR
CONNECT_CLUSTER_DIR=$(new_dir)
out=$("$script" status 2>&1) && rc=0 || rc=$?
check "status without a cluster fails with a clear message" bash -c "[ $rc -ne 0 ] && [[ '$out' == *'no cluster in'* ]]"
out=$("$script" down 2>&1) && rc=0 || rc=$?
check "down without a cluster succeeds" bash -c "[ $rc -eq 0 ] && [[ '$out' == *'nothing to do'* ]]"
"$script" start 0 >/dev/null 2>&1 && rc=0 || rc=$?
check "start 0 is refused" test "$rc" -ne 0
"$script" bogus >/dev/null 2>&1 && rc=0 || rc=$?
check "an unknown command prints usage and fails" test "$rc" -eq 2

# --- a cluster of three stand-ins ----------------------------------------------------------------------------------
export CONNECT_NODE_COMMAND=$standin CONNECT_BOOTSTRAP_SECRETKEY=c2VjcmV0LWZvci10aGUtdGVzdHMtb25seS0zMi1ieXRlcw== Sandbox__Mode=Disabled
out=$("$script" start 3 2>/tmp/cluster-test-start.err) && rc=0 || rc=$?
check "start 3 succeeds" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/    /' /tmp/cluster-test-start.err
check "start prints one CONNECT_URL line and three NODE lines, nothing else" \
  bash -c "[ \$(grep -c '^CONNECT_URL=http://127.0.0.1:[0-9]*\$' <<<'$out') -eq 1 ] &&
           [ \$(grep -Ec '^NODE node[1-3] [0-9]+ http://127.0.0.1:[0-9]+\$' <<<'$out') -eq 3 ] && [ \$(wc -l <<<'$out') -eq 4 ]"
lb=$(sed -n 's/^CONNECT_URL=//p' <<<"$out")
url1=$(field node1 4 <<<"$out") url2=$(field node2 4 <<<"$out") url3=$(field node3 4 <<<"$out")
pid2=$(field node2 3 <<<"$out") pid3=$(field node3 3 <<<"$out")
check "nodes listen on distinct ports" test "$(printf '%s\n' "$lb" "$url1" "$url2" "$url3" | sort -u | wc -l)" -eq 4
check "the load balancer answers /__ping__ with {}" test "$(get "$lb/__ping__")" = "{}"

seen=$(for _ in $(seq 12); do get "$lb/__whoami__"; echo; done | sort -u | tr '\n' ' ')
check "requests through the load balancer reach every node (no stickiness): $seen" test "$seen" = "node1 node2 node3 "

# e URL NAME: the value of NAME in the environment of the node at URL.
e() { get "$1/__env__/$2"; }
pg_port=$("$script" status | awk '$1 == "POSTGRES" { split($3, a, ":"); print a[2] }')
check "nodes get the caller's environment" \
  bash -c "[ '$(e "$url1" CONNECT_BOOTSTRAP_SECRETKEY)' = '$CONNECT_BOOTSTRAP_SECRETKEY' ] && [ '$(e "$url2" Sandbox__Mode)' = Disabled ]"
check "nodes get the PostgreSQL store" \
  test "$(e "$url1" Storage__Provider) $(e "$url1" Storage__ConnectionString)" = "postgres Host=127.0.0.1;Port=$pg_port;Database=connect;Username=connect"
check "nodes share the data directory and the cluster secret" \
  bash -c "[ '$(e "$url1" Connect__DataDir)' = '$(e "$url2" Connect__DataDir)' ] && [ '$(e "$url1" Cluster__Secret)' = '$(e "$url2" Cluster__Secret)' ] && [ -n '$(e "$url1" Cluster__Secret)' ]"
check "each node has its own name, scratch directory, silo port and internal URL" \
  bash -c "[ '$(e "$url1" Cluster__NodeName)' = node1 ] && [ '$(e "$url1" Cluster__ScratchDir)' != '$(e "$url2" Cluster__ScratchDir)' ] &&
           [ '$(e "$url1" Orleans__SiloPort)' != '$(e "$url2" Orleans__SiloPort)' ] && [ '$(e "$url2" Cluster__InternalUrl)' = '$url2' ] &&
           [ '$(e "$url2" ASPNETCORE_URLS)' = '$url2' ] && [ '$(e "$url1" Orleans__AdvertisedAddress)' = 127.0.0.1 ]"

status=$("$script" status)
pg_pid=$(awk '$1 == "POSTGRES" { print $2 }' <<<"$status")
check "status shows every node ready, haproxy and PostgreSQL up" \
  bash -c "[ \$(grep -c ' ready\$' <<<'$status') -eq 3 ] && grep -q '^HAPROXY [0-9]* .* up\$' <<<'$status' && grep -q '^POSTGRES [0-9]* .* up\$' <<<'$status'"
if [ "$(id -u)" -eq 0 ]; then
  check "PostgreSQL runs as a non-root user" test "$(ps -o user= -p "$pg_pid")" != root
fi
pg_bin=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || printf '%s\n' /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")")
check "the database connect exists and takes connections" \
  test "$("$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U connect -d connect -tAc 'select 1' 2>&1)" = 1
check "haproxy accepts the running cluster's configuration" haproxy -c -q -f "$CONNECT_CLUSTER_DIR/haproxy.cfg"

out=$("$script" start 3 2>&1) && rc=0 || rc=$?
check "a second start is refused while the cluster runs" bash -c "[ $rc -ne 0 ] && [[ '$out' == *'a cluster is running'* ]]"

# kill: the node dies at once; the load balancer routes around it.
"$script" kill node2 2>/dev/null
check "kill node2 ends its process" gone "$pid2"
check "status shows node2 down" bash -c "'$script' status | grep -q '^NODE node2 - $url2 down\$'"
ok=0
for _ in $(seq 20); do [ "$(code "$lb/__ping__")" = 200 ] && ok=$((ok + 1)); done
check "the load balancer keeps answering with node2 dead ($ok/20)" test "$ok" -eq 20

# restart: same port, new process, ready, one NODE line.
out=$("$script" restart node2 2>/dev/null) && rc=0 || rc=$?
check "restart node2 prints its NODE line on the same URL" bash -c "[ $rc -eq 0 ] && [[ '$out' =~ ^NODE\ node2\ [0-9]+\ $url2\$ ]]"
newpid2=$(field node2 3 <<<"$out")
check "the restarted node2 is a new process" test "${newpid2:-x}" != "$pid2"
check "node2 answers ready again" test "$(code "$url2/__health__/ready")" = 200

# A restart from a shell without some of the start's environment still gets it; what the caller sets wins.
env -u CONNECT_BOOTSTRAP_SECRETKEY Sandbox__Mode=Auto "$script" restart node1 >/dev/null 2>&1
check "a restart keeps the environment of start, with the caller's on top" \
  bash -c "[ '$(e "$url1" CONNECT_BOOTSTRAP_SECRETKEY)' = '$CONNECT_BOOTSTRAP_SECRETKEY' ] && [ '$(e "$url1" Sandbox__Mode)' = Auto ]"

# stop: graceful.
start=$SECONDS
"$script" stop node3 2>/dev/null
check "stop node3 ends it gracefully and quickly" bash -c "! kill -0 $pid3 2>/dev/null && [ $((SECONDS - start)) -lt 10 ]"
check "node3's log shows the SIGTERM" grep -q "node3: SIGTERM, stopping" "$CONNECT_CLUSTER_DIR/nodes/node3/node.log"

# stop: a node that ignores SIGTERM is killed after the timeout.
out=$("$script" restart node3 2>/dev/null)
pid3=$(field node3 3 <<<"$out")
touch "$CONNECT_CLUSTER_DIR/nodes/node3/scratch/ignore-term"
start=$SECONDS
err=$(CONNECT_CLUSTER_STOP_TIMEOUT=2 "$script" stop node3 2>&1)
rm -f "$CONNECT_CLUSTER_DIR/nodes/node3/scratch/ignore-term"
check "stop falls back to SIGKILL after the timeout" bash -c "! kill -0 $pid3 2>/dev/null && [[ '$err' == *SIGKILL* ]] && [ $((SECONDS - start)) -lt 10 ]"
check "stop on a stopped node is harmless" "$script" stop node3
out=$("$script" restart nodeX 2>&1) && rc=0 || rc=$?
check "an unknown node name is refused" bash -c "[ $rc -ne 0 ] && [[ '$out' == *'no node named'* ]]"
check "logs shows a node's log" bash -c "'$script' logs node3 50 | grep -q 'listening on'"

# down: everything stops, the state directory goes; a second down is a no-op.
status=$("$script" status)
pids=$(awk '$1 == "NODE" && $3 ~ /^[0-9]+$/ { print $3 } $1 != "NODE" && $2 ~ /^[0-9]+$/ { print $2 }' <<<"$status" | tr '\n' ' ')
"$script" down 2>/dev/null
check "down stops every process ($pids)" bash -c "for p in $pids; do ! kill -0 \$p 2>/dev/null || [ \"\$(awk '{print \$3}' /proc/\$p/stat 2>/dev/null)\" = Z ] || exit 1; done"
check "down removes the state directory" test ! -e "$CONNECT_CLUSTER_DIR"
check "down twice is harmless" "$script" down

# --- fixed ports, and down --keep --------------------------------------------------------------------------------------
CONNECT_CLUSTER_DIR=$(new_dir)
base=""
for candidate in 24000 25000 26000 27000 28000; do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then base=$candidate; break; fi
done
out=$(CONNECT_CLUSTER_BASE_PORT=$base "$script" start 2 2>/dev/null) && rc=0 || rc=$?
check "CONNECT_CLUSTER_BASE_PORT lays the ports out from the base" \
  bash -c "[ $rc -eq 0 ] && grep -qx 'CONNECT_URL=http://127.0.0.1:$base' <<<'$out' &&
           [ '$(field node1 4 <<<"$out")' = http://127.0.0.1:$((base + 101)) ] && [ '$(field node2 4 <<<"$out")' = http://127.0.0.1:$((base + 102)) ]"
"$script" down --keep 2>/dev/null
check "down --keep stops the cluster and keeps its logs" \
  bash -c "[ -f '$CONNECT_CLUSTER_DIR/nodes/node1/node.log' ] && '$script' status | grep -q '^NODE node1 - .* down\$'"
"$script" down 2>/dev/null

# --- failures are reported with the node's log ------------------------------------------------------------------------
CONNECT_CLUSTER_DIR=$(new_dir)
err=$(CONNECT_NODE_COMMAND="sh -c 'echo boom-at-start; exit 3'" "$script" start 1 2>&1 >/dev/null) && rc=0 || rc=$?
check "a node that exits at start fails start with its log" bash -c "[ $rc -ne 0 ] && [[ '$err' == *'node1 did not start'* ]] && [[ '$err' == *boom-at-start* ]]"
"$script" down 2>/dev/null

CONNECT_CLUSTER_DIR=$(new_dir)
# The stand-in is never ready: start gives up at the deadline and says why. (start refuses a non-empty state
# directory, so the node command itself puts the not-ready file in its scratch directory.)
err=$(CONNECT_CLUSTER_READY_TIMEOUT=3 CONNECT_NODE_COMMAND="sh -c 'touch \"\$Cluster__ScratchDir/not-ready\"; exec $standin'" \
  "$script" start 1 2>&1 >/dev/null) && rc=0 || rc=$?
check "a node that never gets ready fails start at the deadline" bash -c "[ $rc -ne 0 ] && [[ '$err' == *'not ready after 3s'* ]] && [[ '$err' == *'last /__health__/ready: 503'* ]]"
"$script" down 2>/dev/null

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
