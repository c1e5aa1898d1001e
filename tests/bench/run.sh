#!/usr/bin/env bash
# Builds the server and runs the benchmarks against their same-run baselines (see bench.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for p in wrk nginx python3-flask; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p"); done
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
dotnet build src/Connect.Server -c Release -nologo -v q
exec python3 tests/bench/bench.py
