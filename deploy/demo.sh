#!/usr/bin/env bash
# Builds Lapse and runs the whole stack on this machine as a demo: one
# registry, two schedulers, the audit subscriber and an example API node
# whose silent clients are evicted within a minute.
#
# Usage: deploy/demo.sh [SECONDS]
#   Runs until Ctrl-C, or for SECONDS when given.  Everything it writes
#   (store, audit log, process logs, config) goes to ./demo/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
demo="$root/demo"
seconds=${1:-0}

"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

mkdir -p "$demo"
rm -f "$demo"/lapse.db* "$demo"/*.log "$demo"/audit.jsonl

# The demo uses ipc:// endpoints in its folder, so it cannot clash with
# anything listening on the default TCP ports.
cat > "$demo/lapse.conf" <<CONF
# Demo settings: clients are evicted after 20 s of silence, and each
# scheduler ticks every 5 s.
registry
    commands = ipc://$demo/commands
    events = ipc://$demo/events
    ticks = ipc://$demo/ticks
    store = $demo/lapse.db
    stale-after = 20s
scheduler
    ticks = ipc://$demo/ticks
    interval = 5s
audit
    commands = ipc://$demo/commands
    events = ipc://$demo/events
    file = $demo/audit.jsonl
lapsectl
    commands = ipc://$demo/commands
    events = ipc://$demo/events
node-sim
    commands = ipc://$demo/commands
    events = ipc://$demo/events
CONF
export LAPSE_CONFIG="$demo/lapse.conf"

pids=()
stop_all() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    echo "demo stopped; files are in $demo"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

start() {
    local name=$1
    shift
    "$@" 2>"$demo/$name.log" &
    pids+=($!)
}

start registry "$build/registry/lapse-registry"
start scheduler-a "$build/scheduler/lapse-scheduler" --id scheduler-a
start scheduler-b "$build/scheduler/lapse-scheduler" --id scheduler-b
start audit "$build/audit/lapse-audit"
start node-sim "$build/client/lapse-node-sim" --node api-1 --clients 40 \
    --silent 25 --touch-period 5s

cat <<TEXT
Lapse demo is running; files are in $demo.
  40 clients on node api-1, 10 of them silent; stale after 20 s.
  Evictions appear in the audit log within about 30 s:
      tail -f $demo/audit.jsonl
  Ask the registry (with LAPSE_CONFIG=$demo/lapse.conf):
      $build/client/lapsectl stats
      $build/client/lapsectl list
      $build/client/lapsectl events
  Process logs: $demo/*.log
Following the audit log now; Ctrl-C stops the demo.
TEXT

touch "$demo/audit.jsonl"
if [ "$seconds" -gt 0 ]; then
    timeout "$seconds" tail -n +1 -f "$demo/audit.jsonl" || true
else
    tail -n +1 -f "$demo/audit.jsonl"
fi
