#!/usr/bin/env bash
# Builds the server and runs the benchmarks against their same-run baselines (see bench.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for p in wrk nginx haproxy postgresql python3-flask; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p"); done
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
dotnet build src/Connect.Server -c Release -nologo -v q
# "cluster" runs the cluster benchmarks (deploy/cluster.sh: PostgreSQL, 3 nodes, haproxy); otherwise the single-node ones.
if [ "${1:-}" = cluster ]; then
  exec python3 tests/bench/cluster_bench.py
fi
exec python3 tests/bench/bench.py
