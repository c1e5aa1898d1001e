#!/usr/bin/env bash
# Runs every test suite of Connect on a fresh machine: installs what the tests need, builds once, runs each
# test project, and ends with one line "N passed, N failed, N skipped" summed over all of them.
set -uo pipefail
cd "$(dirname "$0")/.."

# What the samples and end-to-end tests run: Debian's Python with venv, Flask, FastAPI/uvicorn, nbconvert + ipykernel,
# bubblewrap, which sandboxes content processes, nftables, which keeps content off this host's own ports, PostgreSQL
# (the cluster store; tests start throwaway servers as a non-root user) and haproxy (the cluster's load balancer).
packages=(python3 python3-venv python3-pip python3-flask python3-fastapi python3-uvicorn python3-websockets jupyter-nbconvert python3-ipykernel bubblewrap nftables postgresql haproxy)
# Connect.Deploy.Tests parses deploy/terraform with an npm package run by Node.js (kept when Node.js came from elsewhere).
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq || exit 1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || exit 1
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build Connect.sln -c Release -warnaserror || { echo "0 passed, 1 failed"; exit 1; }

results=$(mktemp -d)
status=0
for project in tests/*/*.Tests.csproj; do
  name=$(basename "$project" .csproj)
  echo "=== $name"
  dotnet test "$project" -c Release --no-build --logger "trx;LogFileName=$name.trx" --results-directory "$results" || status=1
done

passed=0; failed=0; skipped=0; files=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx")
  total=$(sed -E 's/.* total="([0-9]+)".*/\1/' <<<"$counters")
  p=$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")
  f=$(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")
  e=$(sed -E 's/.* error="([0-9]+)".*/\1/' <<<"$counters")
  passed=$((passed + p)); failed=$((failed + f + e)); skipped=$((skipped + total - p - f - e))
done
expected=$(ls tests/*/*.Tests.csproj | wc -l)
if [ "$files" -ne "$expected" ]; then
  echo "only $files of $expected test projects produced results"
  status=1
  failed=$((failed + expected - files))
fi
rm -rf "$results"
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
