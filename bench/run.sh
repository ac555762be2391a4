#!/usr/bin/env bash
# Compares lapse-registry with Redis (keys under EXPIRE and keyspace
# notifications) and etcd (leases, keepalives and watches) at the same
# job, on this machine, in one run, and writes docs/benchmarks.md.
#
# Usage: bench/run.sh [--smoke] [--build DIR]
#   --smoke      every Lapse workload at a tiny scale, no Redis or etcd,
#                nothing written to docs/; checks that the harness works
#   --build DIR  where lapse-registry and the bench tools are built
#                (default build-bench, configured and built if missing)
#
# Scale, by environment (defaults for the full run):
#   LAPSE_BENCH_RUNS=3              runs of every workload; medians
#   LAPSE_BENCH_POPULATION=1000000  clients (Lapse) and keys (Redis)
#   LAPSE_BENCH_STALE=200000        of those, how many go stale
#   LAPSE_BENCH_DURATION=10s        each throughput or latency run
#   LAPSE_BENCH_LOADGENS=2          lapse-loadgen processes, batched
#   LAPSE_BENCH_CONNECTIONS=8       connections per batched loadgen
#   LAPSE_BENCH_WINDOW=8            messages in flight per connection
#   LAPSE_BENCH_PACED_RATE=1000000  ids/s of the paced latency run
#   LAPSE_BENCH_SWEEP_RATE=100000   ids/s touched during the sweep: the
#                                   active clients must all be touched
#                                   within stale-after, or they go stale
#   LAPSE_BENCH_SINGLE_CONNECTIONS=50
#   LAPSE_BENCH_STALE_AFTER=15      seconds, the registry's stale-after
#                                   in the sweep workload
#   LAPSE_BENCH_REDIS_PIPELINED=5000000   SETs in the pipelined run
#   LAPSE_BENCH_REDIS_SINGLE=500000       SETs in the unpipelined run
#   LAPSE_BENCH_ETCD_POPULATION=20000     leases (etcd grants slowly)
#   LAPSE_BENCH_ETCD_STALE=4000           of those, how many expire
#   LAPSE_BENCH_PORT=27710          Lapse uses this and the next two,
#                                   Redis 26379, etcd 22379 and 22380
#   LAPSE_BENCH_KEEP=1              keep the work folder and its logs
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
build="$root/build-bench"
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --build) build=$(cd "$2" && pwd); shift ;;
        --build=*) build=$(cd "${1#--build=}" && pwd) ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$smoke" = 1 ]; then
    runs=${LAPSE_BENCH_RUNS:-1}
    population=${LAPSE_BENCH_POPULATION:-5000}
    stale=${LAPSE_BENCH_STALE:-1000}
    duration=${LAPSE_BENCH_DURATION:-2s}
    loadgens=${LAPSE_BENCH_LOADGENS:-2}
    connections=${LAPSE_BENCH_CONNECTIONS:-2}
    paced_rate=${LAPSE_BENCH_PACED_RATE:-20000}
    sweep_rate=${LAPSE_BENCH_SWEEP_RATE:-20000}
    single_connections=${LAPSE_BENCH_SINGLE_CONNECTIONS:-4}
    stale_after=${LAPSE_BENCH_STALE_AFTER:-2}
else
    runs=${LAPSE_BENCH_RUNS:-3}
    population=${LAPSE_BENCH_POPULATION:-1000000}
    stale=${LAPSE_BENCH_STALE:-200000}
    duration=${LAPSE_BENCH_DURATION:-10s}
    loadgens=${LAPSE_BENCH_LOADGENS:-2}
    connections=${LAPSE_BENCH_CONNECTIONS:-8}
    paced_rate=${LAPSE_BENCH_PACED_RATE:-1000000}
    sweep_rate=${LAPSE_BENCH_SWEEP_RATE:-100000}
    single_connections=${LAPSE_BENCH_SINGLE_CONNECTIONS:-50}
    stale_after=${LAPSE_BENCH_STALE_AFTER:-15}
fi
window=${LAPSE_BENCH_WINDOW:-8}
redis_pipelined=${LAPSE_BENCH_REDIS_PIPELINED:-5000000}
redis_single=${LAPSE_BENCH_REDIS_SINGLE:-500000}
etcd_population=${LAPSE_BENCH_ETCD_POPULATION:-20000}
etcd_stale=${LAPSE_BENCH_ETCD_STALE:-4000}
port=${LAPSE_BENCH_PORT:-27710}
redis_port=26379
etcd_port=22379
active=$((population - stale))

work=$(mktemp -d "${TMPDIR:-/tmp}/lapse-bench-XXXXXX")
pids=()
commands_log="$work/commands.txt"
failures=0

log() { printf '== %s\n' "$*" >&2; }

# ---------------------------------------------------------------- processes

track() { pids+=("$1"); }

# Forgets a process that was stopped and reaped: its pid may be given to
# another program afterwards, which the cleanup must not touch.
untrack() {
    local kept=() pid
    for pid in "${pids[@]}"; do
        [ "$pid" = "$1" ] || kept+=("$pid")
    done
    pids=(${kept[@]+"${kept[@]}"})
}

# Stops one process we started: SIGTERM, then SIGKILL after 10 s.
# Returns its exit status (143 when it died of the SIGTERM itself).
stop_pid() {
    local pid=$1 waited=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 100 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    local status=0
    wait "$pid" 2>/dev/null || status=$?
    untrack "$pid"
    return $status
}

cleanup() {
    local pid
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill -0 "$pid" 2>/dev/null && stop_pid "$pid" || true
    done
    if [ "${LAPSE_BENCH_KEEP:-0}" = 1 ] || [ "$failures" -gt 0 ]; then
        log "work folder kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Records a command for docs/benchmarks.md (first run only).  A command
# started in the background is noted and then started directly, so that
# $! is its own pid, not that of a subshell running a function.
note() {
    [ "${current_run:-1}" != 1 ] && return 0
    printf '%q ' "$@" | sed 's/ $//' >> "$commands_log"
    echo >> "$commands_log"
}

# Records a line of text as it is (first run only).
note_text() {
    [ "${current_run:-1}" != 1 ] || printf '%s\n' "$*" >> "$commands_log"
}

# Runs a command in the foreground, noted.
run() {
    note "$@"
    "$@"
}

# The number in key of a line of key=value fields, or 0.
num() {
    local value
    value=$(field "$1" "$2")
    printf '%s\n' "${value:-0}"
}

# The value of key in a line of key=value fields.
field() {
    local key=$1 line=$2
    printf '%s\n' "$line" | tr ' ' '\n' | sed -n "s/^$key=//p" | head -n 1
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

fail() {
    echo "run.sh: $*" >&2
    failures=$((failures + 1))
}

# ------------------------------------------------------------------ results

declare -A results
# record KEY VALUE: one run's figure; medians are taken over the runs.
record() { results[$1]="${results[$1]:-} $2"; }

median() {
    local values
    values=$(printf '%s\n' ${results[$1]:-} | grep -E '^-?[0-9.]+$' \
        | sort -g) || true
    [ -n "$values" ] || { echo "n/a"; return; }
    local count
    count=$(printf '%s\n' "$values" | wc -l)
    printf '%s\n' "$values" | awk -v n="$count" '
        { v[NR] = $1 }
        END {
            m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%.10g\n", m
        }'
}

# -------------------------------------------------------------------- setup

install_peers() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v etcdctl >/dev/null || missing+=(etcd-client)
    command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    local sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    # The packages may start their system services; this run uses its own
    # servers on their own ports, so stop those to keep the machine quiet.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        local unit
        for unit in redis-server etcd; do
            $sudo systemctl stop "$unit" 2>/dev/null || true
        done
    fi
}

build_tools() {
    if [ ! -x "$build/bench/lapse-loadgen" ] \
        || [ ! -x "$build/registry/lapse-registry" ]; then
        log "building into $build"
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$build" -j "$(nproc)" --target lapse-registry \
            lapse-audit lapse-loadgen lapse-sweepwatch lapse-etcdload \
            >/dev/null
    fi
    registry="$build/registry/lapse-registry"
    audit="$build/audit/lapse-audit"
    loadgen="$build/bench/lapse-loadgen"
    sweepwatch="$build/bench/lapse-sweepwatch"
    etcdload="$build/bench/lapse-etcdload"
}

# -------------------------------------------------------------------- Lapse

if [ "$smoke" = 1 ]; then
    # ipc:// in the work folder, so that a smoke run never meets another
    # program's TCP port on a shared machine
    commands_ep="ipc://$work/commands"
    events_ep="ipc://$work/events"
    ticks_ep="ipc://$work/ticks"
else
    commands_ep="tcp://127.0.0.1:$port"
    events_ep="tcp://127.0.0.1:$((port + 1))"
    ticks_ep="tcp://127.0.0.1:$((port + 2))"
fi
endpoints=(--commands "$commands_ep" --events "$events_ep")

# lapse_start STORE LOG [registry options]: starts the registry in the
# background (registry_pid) and waits until it answers a touch, setting
# ready_ms to the time from launch to that first answer.
lapse_start() {
    local store=$1 logfile=$2
    shift 2
    local since
    since=$(date +%s%3N)
    note "$registry" "${endpoints[@]}" --ticks "$ticks_ep" --store "$store" "$@"
    "$registry" "${endpoints[@]}" --ticks "$ticks_ep" --store "$store" \
        "$@" >> "$logfile" 2>&1 &
    registry_pid=$!
    track "$registry_pid"
    local line
    line=$("$loadgen" --commands "$commands_ep" --probe --since-ms "$since" \
        --timeout 120s) || { fail "registry did not answer: $line"; return 1; }
    ready_ms=$(field ready_ms "$line")
}

# Stops the registry; a non-zero exit (a sanitizer's report, say) fails.
lapse_stop() {
    local status=0
    stop_pid "$registry_pid" || status=$?
    [ $status -eq 0 ] || fail "lapse-registry exited with status $status"
}

# logged FILE MSG KEY: KEY's number on the last registry log line MSG.
logged() {
    sed -n "s/.*msg=\"$2\".* $3=\([0-9]*\).*/\1/p" "$1" | tail -n 1
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Copies the seeded store to a fresh one for a workload.
fresh_store() {
    local target=$1 file
    rm -f "$target" "$target-wal" "$target-shm"
    for file in "$work/seed.db" "$work/seed.db-wal"; do
        [ -f "$file" ] && cp "$file" "$target${file#"$work/seed.db"}"
    done
    return 0
}

lapse_seed() {
    log "Lapse: registering $population clients"
    lapse_start "$work/seed.db" "$work/registry-seed.log" || return 1
    local line
    line=$(run "$loadgen" --commands "$commands_ep" --population "$population" \
        --connections 8 --duration 0s) || fail "registration: $line"
    record lapse_register_per_s "$(field per_s "$line")"
    lapse_stop
    # Every workload starts from this store: without it nothing can run
    [ "$failures" -eq 0 ] || { echo "run.sh: seeding failed" >&2; exit 1; }
}

# (a) batched touches, then (d) memory and (e) restart on the same store.
lapse_batched() {
    local store="$work/run.db" logfile="$work/registry-batched-$current_run.log"
    fresh_store "$store"
    lapse_start "$store" "$logfile" || return 1
    local index outs=()
    for index in $(seq 1 "$loadgens"); do
        local args=(--commands "$commands_ep" --register=off
            --population "$population" --ids-per-touch 100
            --connections "$connections" --window "$window"
            --duration "$duration" --start $((index * 7919)))
        note "$loadgen" "${args[@]}"
        "$loadgen" "${args[@]}" > "$work/batched-$index.out" &
        outs+=("$!")
    done
    local total=0 worst=0 errors=0 line
    for index in $(seq 1 "$loadgens"); do
        wait "${outs[$((index - 1))]}" || fail "batched loadgen $index failed"
        line=$(cat "$work/batched-$index.out")
        total=$(awk -v a="$total" -v b="$(field ids_per_s "$line")" \
            'BEGIN { print a + b }')
        worst=$(awk -v a="$worst" -v b="$(field p99_us "$line")" \
            'BEGIN { print (b > a ? b : a) }')
        errors=$((errors + $(num errors "$line") + $(num lost "$line")))
    done
    record lapse_batched_ids_per_s "$total"
    record lapse_batched_p99_us "$worst"
    record lapse_batched_errors "$errors"
    record lapse_rss_mib "$(awk -v k="$(rss_kib "$registry_pid")" \
        'BEGIN { printf "%.1f", k / 1024 }')"

    local started stopped
    started=$(date +%s%3N)
    lapse_stop
    stopped=$(date +%s%3N)
    record lapse_stop_ms $((stopped - started))
    lapse_start "$store" "$logfile" || return 1
    record lapse_restart_ms "$ready_ms"
    record lapse_load_ms "$(logged "$logfile" "clients loaded" duration_ms)"
    lapse_stop
}

# (b) single-id touches, one loadgen, many connections, one in flight each.
lapse_single() {
    local store="$work/run.db"
    fresh_store "$store"
    lapse_start "$store" "$work/registry-single-$current_run.log" || return 1
    local line
    line=$(run "$loadgen" --commands "$commands_ep" --register=off \
        --population "$population" --ids-per-touch 1 \
        --connections "$single_connections" --window 1 \
        --duration "$duration") || fail "single loadgen: $line"
    record lapse_single_ids_per_s "$(field ids_per_s "$line")"
    record lapse_single_p99_us "$(field p99_us "$line")"
    lapse_stop
}

# Ack latency at a paced rate.
lapse_paced() {
    local store="$work/run.db"
    fresh_store "$store"
    lapse_start "$store" "$work/registry-paced-$current_run.log" || return 1
    local line
    line=$(run "$loadgen" --commands "$commands_ep" --register=off \
        --population "$population" --ids-per-touch 100 --connections 8 \
        --window 16 --rate "$paced_rate" --duration "$duration") \
        || fail "paced loadgen: $line"
    record lapse_paced_ids_per_s "$(field ids_per_s "$line")"
    record lapse_paced_p50_us "$(field p50_us "$line")"
    record lapse_paced_p99_us "$(field p99_us "$line")"
    record lapse_paced_max_us "$(field max_us "$line")"
    lapse_stop
}

# (c) the sweep of the stale clients, timed to a subscriber and the audit
# file, and (f) touch latency over time while it runs.
lapse_sweep() {
    local store="$work/run.db" logfile="$work/registry-sweep-$current_run.log"
    local auditfile="$work/audit-$current_run.jsonl"
    local timeline="$work/timeline-$current_run.tsv"
    fresh_store "$store"
    rm -f "$auditfile"
    lapse_start "$store" "$logfile" --stale-after "${stale_after}s" \
        --brake=off || return 1
    local serving_since
    serving_since=$(date +%s%3N)
    note "$audit" "${endpoints[@]}" --file "$auditfile"
    "$audit" "${endpoints[@]}" --file "$auditfile" \
        > "$work/audit-$current_run.log" 2>&1 &
    local audit_pid=$!
    track "$audit_pid"

    # Touch the first population - stale clients all along; the others
    # were last active when the store was seeded.  The start-up grace
    # holds every sweep until stale-after has passed since serving began.
    local args=(--commands "$commands_ep" --register=off
        --population "$population" --touch-ids "$active"
        --ids-per-touch 100 --connections 8 --window 16
        --rate "$sweep_rate" --duration 300s --timeline "$timeline")
    note "$loadgen" "${args[@]}"
    "$loadgen" "${args[@]}" > "$work/sweep-loadgen-$current_run.out" &
    local touch_pid=$!
    track "$touch_pid"
    local waited=$(($(date +%s%3N) - serving_since))
    local wait_ms=$((stale_after * 1000 + 1500 - waited))
    [ $wait_ms -le 0 ] \
        || sleep "$(awk -v m="$wait_ms" 'BEGIN { print m / 1000 }')"

    kill -USR1 "$touch_pid"
    local line
    line=$(run "$sweepwatch" "${endpoints[@]}" --ticks "$ticks_ep" \
        --expect "$stale" --audit-file "$auditfile" --timeout 30s) \
        || fail "sweepwatch: $line"
    kill -USR2 "$touch_pid"
    sleep 2
    stop_pid "$touch_pid" || fail "touch loadgen exited with status $?"
    local touched
    touched=$(cat "$work/sweep-loadgen-$current_run.out")
    stop_pid "$audit_pid" || fail "lapse-audit exited with status $?"
    lapse_stop

    record lapse_sweep_first_ms "$(field first_ms "$line")"
    record lapse_sweep_subscriber_ms "$(field subscriber_ms "$line")"
    record lapse_sweep_audit_ms "$(field audit_ms "$line")"
    record lapse_sweep_events "$(field events "$line")"
    record lapse_sweep_audit_lines "$(field audit_lines "$line")"
    record lapse_sweep_registry_ms "$(logged "$logfile" "sweep finished" \
        duration_ms)"
    record lapse_sweep_evicted "$(logged "$logfile" "sweep finished" evicted)"
    record lapse_sweep_touch_p99_us "$(field marked_p99_us "$touched")"
    record lapse_sweep_touch_outside_p99_us "$(field unmarked_p99_us \
        "$touched")"
    record lapse_sweep_touch_max_us "$(field marked_max_us "$touched")"
    record lapse_sweep_touch_ids_per_s "$(field ids_per_s "$touched")"
    record lapse_sweep_touch_unknown "$(field unknown "$touched")"
    [ "$current_run" = 1 ] && cp "$timeline" "$work/timeline.tsv"
    return 0
}

# -------------------------------------------------------------------- Redis

redis_cli() { redis-cli -p "$redis_port" "$@"; }

redis_start() {
    mkdir -p "$work/redis"
    # Append-only file synced every second: the durability closest to the
    # registry's flush of activity every second.  No RDB snapshots, whose
    # fork would land at a random point of a run.
    local args=(--port "$redis_port" --bind 127.0.0.1 --dir "$work/redis"
        --save "" --appendonly yes --appendfsync everysec --daemonize no)
    note redis-server "${args[@]}"
    redis-server "${args[@]}" > "$work/redis.log" 2>&1 &
    redis_pid=$!
    track "$redis_pid"
    local tries=0
    until redis_cli ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || { fail "redis-server did not start"; return 1; }
        sleep 0.1
    done
}

redis_stop() {
    stop_pid "$redis_pid" || true
    rm -rf "$work/redis"
}

# Writes SET commands for keys FIRST to LAST - 1 in Redis's protocol,
# with the expiry arguments given (EX 3600, or PXAT <ms>).
redis_keys() {
    awk -v first="$1" -v last="$2" -v a="$3" -v b="$4" 'BEGIN {
        for (i = first; i < last; i++) {
            key = sprintf("client:%012d", i)
            printf "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n", \
                length(key), key
            printf "$%d\r\n%s\r\n$%d\r\n%s\r\n", length(a), a, length(b), b
        }
    }'
}

redis_load() {
    redis_keys "$1" "$2" "$3" "$4" > "$work/redis-keys.resp"
    local shown=$4
    [ "$3" != PXAT ] || shown='<due ms>'
    note_text "# SET client:<n> 1 $3 $shown for n from $1 to $(($2 - 1))," \
        "in Redis protocol:"
    note redis-cli -p "$redis_port" --pipe
    redis-cli -p "$redis_port" --pipe < "$work/redis-keys.resp" \
        > "$work/redis-pipe.log"
}

# Field N of redis-benchmark's --csv line (2: requests/s, 7: p99 ms).
csv_field() {
    printf '%s\n' "$1" | cut -d, -f"$2" | tr -d '"'
}

redis_workloads() {
    redis_start || return 1
    local started loaded
    started=$(date +%s%3N)
    redis_load 0 "$population" EX 3600
    loaded=$(date +%s%3N)
    record redis_load_per_s "$(awk -v n="$population" \
        -v ms=$((loaded - started)) 'BEGIN { printf "%.0f", n * 1000 / ms }')"
    record redis_rss_mib "$(awk -v k="$(rss_kib "$redis_pid")" \
        'BEGIN { printf "%.1f", k / 1024 }')"

    local line
    line=$(run redis-benchmark -p "$redis_port" -P 16 -c 50 \
        -r "$population" -n "$redis_pipelined" --csv \
        SET client:__rand_int__ 1 EX 3600 | tail -n 1)
    record redis_pipelined_per_s "$(csv_field "$line" 2)"
    line=$(run redis-benchmark -p "$redis_port" -P 1 -c "$single_connections" \
        -r "$population" -n "$redis_single" --csv \
        SET client:__rand_int__ 1 EX 3600 | tail -n 1)
    record redis_single_per_s "$(csv_field "$line" 2)"
    record redis_single_p99_ms "$(csv_field "$line" 7)"

    # The same run without the append-only file, to show what it costs
    run redis-cli -p "$redis_port" config set appendonly no >/dev/null
    line=$(run redis-benchmark -p "$redis_port" -P 16 -c 50 \
        -r "$population" -n "$redis_pipelined" --csv \
        SET client:__rand_int__ 1 EX 3600 | tail -n 1)
    record redis_pipelined_no_aof_per_s "$(csv_field "$line" 2)"

    redis_expiry
    redis_stop
}

# 200k keys due at one instant among 1M; counts the "expired"
# notifications a subscriber gets within 30 s of that instant.
redis_expiry() {
    run redis-cli -p "$redis_port" flushall >/dev/null
    run redis-cli -p "$redis_port" config set notify-keyspace-events Ex \
        >/dev/null
    redis_load 0 "$active" EX 3600
    rm -f "$work/redis.fifo"
    mkfifo "$work/redis.fifo"
    redis-cli -p "$redis_port" --csv psubscribe '__keyevent@0__:expired' \
        > "$work/redis.fifo" &
    local sub_pid=$!
    track "$sub_pid"
    local due=$(($(date +%s%3N) + 5000))
    "$sweepwatch" --lines --match '"pmessage"' --expect "$stale" \
        --since-ms "$due" --timeout 30s < "$work/redis.fifo" \
        > "$work/redis-expiry.out" &
    local watch_pid=$!
    sleep 0.5
    redis_load "$active" "$population" PXAT "$due"
    wait "$watch_pid" || true
    stop_pid "$sub_pid" || true
    note_text "redis-cli -p $redis_port --csv psubscribe" \
        "'__keyevent@0__:expired' | lapse-sweepwatch --lines --match" \
        "'\"pmessage\"' --expect $stale --since-ms DUE --timeout 30s"
    local line
    line=$(cat "$work/redis-expiry.out")
    record redis_expired_30s "$(field matched "$line")"
    record redis_expiry_done_ms "$(field done_ms "$line")"
    record redis_expiry_first_ms "$(field first_ms "$line")"
}

# --------------------------------------------------------------------- etcd

etcd_start() {
    rm -rf "$work/etcd"
    local peer="http://127.0.0.1:$((etcd_port + 1))"
    local args=(--name bench --data-dir "$work/etcd"
        --listen-client-urls "http://127.0.0.1:$etcd_port"
        --advertise-client-urls "http://127.0.0.1:$etcd_port"
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer"
        --initial-cluster "bench=$peer" --log-level warn)
    note etcd "${args[@]}"
    etcd "${args[@]}" > "$work/etcd.log" 2>&1 &
    etcd_pid=$!
    track "$etcd_pid"
    local tries=0
    until ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$etcd_port" \
        endpoint health >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || { fail "etcd did not start"; return 1; }
        sleep 0.2
    done
}

etcd_stop() {
    stop_pid "$etcd_pid" || true
    rm -rf "$work/etcd"
}

etcd_workloads() {
    etcd_start || return 1
    local etcd_active=$((etcd_population - etcd_stale)) line
    line=$(run "$etcdload" --port "$etcd_port" --population "$etcd_active" \
        --keys=on --ttl 3600 --duration 0s) || fail "etcd grant: $line"
    record etcd_grant_per_s "$(field per_s "$line")"
    line=$(run "$etcdload" --port "$etcd_port" --population "$etcd_active" \
        --grant=off --ids-per-request 100 --connections 8 \
        --duration "$duration") || fail "etcd keepalive: $line"
    record etcd_batched_per_s "$(field ids_per_s "$line")"
    record etcd_batched_errors "$(field errors "$line")"
    line=$(run "$etcdload" --port "$etcd_port" --population "$etcd_active" \
        --grant=off --ids-per-request 1 --connections "$single_connections" \
        --duration "$duration") || fail "etcd keepalive: $line"
    record etcd_single_per_s "$(field ids_per_s "$line")"
    etcd_expiry
    etcd_stop
}

# etcd_stale leases with keys, granted with a short TTL among the others;
# times the watch's DELETE events from the moment the last was due.
etcd_expiry() {
    local ttl=10
    rm -f "$work/etcd.fifo"
    mkfifo "$work/etcd.fifo"
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$etcd_port" watch \
        --prefix client/ > "$work/etcd.fifo" &
    local sub_pid=$!
    track "$sub_pid"
    local limit=$((ttl + etcd_stale / 200 + 60))
    "$sweepwatch" --lines --match DELETE --expect "$etcd_stale" \
        --timeout "${limit}s" < "$work/etcd.fifo" > "$work/etcd-expiry.out" &
    local watch_pid=$!
    sleep 0.5
    local line
    line=$(run "$etcdload" --port "$etcd_port" --population "$etcd_stale" \
        --first 100000000 --keys=on --ttl "$ttl" --duration 0s) \
        || fail "etcd grant: $line"
    local due=$(($(field last_wall_ms "$line") + ttl * 1000))
    wait "$watch_pid" || true
    stop_pid "$sub_pid" || true
    note_text "ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:$etcd_port" \
        "watch --prefix client/ | lapse-sweepwatch --lines --match DELETE" \
        "--expect $etcd_stale --timeout ${limit}s"
    line=$(cat "$work/etcd-expiry.out")
    record etcd_deleted "$(field matched "$line")"
    local done_wall
    done_wall=$(field done_wall_ms "$line")
    [ "${done_wall:-0}" -le 0 ] \
        || record etcd_expiry_done_ms $((done_wall - due))
}

# ------------------------------------------------------------------- report

# Formats a number: ids/s as millions or thousands, plain otherwise.
per_s() {
    awk -v v="$1" 'BEGIN {
        if (v !~ /^-?[0-9.]+$/) { print v; exit }
        if (v >= 1e6) printf "%.2f M/s\n", v / 1e6
        else if (v >= 1e3) printf "%.1f k/s\n", v / 1e3
        else printf "%.0f /s\n", v
    }'
}

# ratio A B: A / B to two decimals, or n/a.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "n/a"
        else printf "%.2f\n", a / b
    }'
}

# check VALUE OP LIMIT: "met" or "not met" (n/a when unmeasured).
check() {
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        if (v !~ /^-?[0-9.]+$/ || l !~ /^-?[0-9.]+$/) { print "n/a"; exit }
        ok = (op == ">=") ? v >= l : (op == "<") ? v < l : v <= l
        print ok ? "met" : "not met"
    }'
}

plot_timeline() {
    local tsv=$1 png=$2
    local from to shade=
    from=$(awk -F'\t' 'NR > 1 && $7 == 1 { print $1 / 1000; exit }' "$tsv")
    to=$(awk -F'\t' 'NR > 1 && $7 == 1 { t = $1 / 1000 } END { print t }' \
        "$tsv")
    [ -z "$from" ] || shade="set object 1 rect from $from, graph 0 \
to $to, graph 1 fc rgb '#f4d6d6' fs solid 0.6 noborder behind"
    local data="every ::1 using (\$1/1000)"
    gnuplot <<PLOT
set terminal pngcairo size 960,540 font ',10'
set output '$png'
set datafile separator '\t'
set title 'Touch acknowledgements during a sweep of $stale stale clients \
among $population (shaded: tick to last event)'
set xlabel 'seconds since the touches began'
set ylabel 'ack latency per 100 ms window (ms, log scale)'
set logscale y
set y2label 'ids acknowledged per second (millions)'
set y2tics
set ytics nomirror
set key top left
set grid
$shade
plot '$tsv' $data:(\$5/1000) with lines lw 2 title 'p99', \
     '' $data:(\$6/1000) with lines lw 1 title 'max', \
     '' $data:(\$3/1e6) axes x1y2 with lines lw 1 dt 2 lc rgb '#999999' \
        title 'ids/s (right axis)', \
     5 with lines dt 3 lc rgb 'black' title '5 ms target'
PLOT
}

rounds() {
    [ "$runs" = 1 ] && echo "1 round" || echo "$runs rounds"
}

# The registry's flush settings, from its effective configuration.
flush_settings() {
    grep -h -m 1 'msg="effective configuration"' \
        "$work/registry-batched-1.log" 2>/dev/null | tr ' ' '\n' \
        | grep -E '^(flush-interval|activity-granularity|flush-batch)=' \
        | tr '\n' ' ' | sed 's/ $//'
}

# Says how busy the machine was, from the 1-minute load average taken
# just before the run began (other work) and at its end.
machine_sentence() {
    local busy
    busy=$(awk -v l="$load_start" 'BEGIN { print (l >= 0.5) ? 1 : 0 }')
    if [ "$busy" = 1 ]; then
        printf 'These figures come from one run on a shared %s-core\n' \
            "$(nproc)"
        printf 'machine, busy with other work while it ran (load average\n'
        printf '%s just before it began, %s at its end).' \
            "$load_start" "$load_end"
    else
        printf 'These figures come from one run on a %s-core machine\n' \
            "$(nproc)"
        printf '(load average %s just before it began, %s at its end).' \
            "$load_start" "$load_end"
    fi
}

# The LAPSE_BENCH_* variables this run was given, for rerunning it.
env_line() {
    local vars
    vars=$(env | grep '^LAPSE_BENCH_' | grep -v '^LAPSE_BENCH_KEEP=' | sort \
        | tr '\n' ' ' | sed 's/ $//')
    if [ -n "$vars" ]; then
        printf 'this run had `%s`' "$vars"
    else
        printf 'this run used the defaults'
    fi
}

machine_line() {
    local cpu mem
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    printf '| cores (nproc) | %s |\n| memory | %s |\n| CPU | %s |\n' \
        "$(nproc)" "$mem" "$cpu"
    printf '| kernel | %s |\n| OS | Debian %s |\n' "$(uname -r)" \
        "$(cat /etc/debian_version 2>/dev/null || echo unknown)"
}

# us_ms MICROSECONDS: milliseconds with two decimals.
us_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /^-?[0-9.]+$/) printf "%.2f\n", v / 1000; else print v }'
}

# row CELL...: one Markdown table row.
row() {
    printf '|'
    printf ' %s |' "$@"
    printf '\n'
}

figures_table() {
    local lb rp eb ls rs es lp99 rp99 rss rrss lreg rload egrant
    lb=$(median lapse_batched_ids_per_s)
    rp=$(median redis_pipelined_per_s)
    eb=$(median etcd_batched_per_s)
    ls=$(median lapse_single_ids_per_s)
    rs=$(median redis_single_per_s)
    es=$(median etcd_single_per_s)
    lp99=$(us_ms "$(median lapse_single_p99_us)")
    rp99=$(median redis_single_p99_ms)
    rss=$(median lapse_rss_mib)
    rrss=$(median redis_rss_mib)
    lreg=$(median lapse_register_per_s)
    rload=$(median redis_load_per_s)
    egrant=$(median etcd_grant_per_s)
    local redis_done
    redis_done=$(median redis_expiry_done_ms)
    [ "$redis_done" != -1 ] || redis_done="not within 30 s"

    row workload Lapse Redis etcd "Lapse / Redis" "Lapse / etcd"
    row --- --- --- --- --- ---
    row "(a) batched touches, ids/s" "$(per_s "$lb")" "$(per_s "$rp")" \
        "$(per_s "$eb")" "$(ratio "$lb" "$rp")" "$(ratio "$lb" "$eb")"
    local rn
    rn=$(median redis_pipelined_no_aof_per_s)
    row "(a) the same, Redis without its append-only file" "" \
        "$(per_s "$rn")" "" "$(ratio "$lb" "$rn")" ""
    row "(b) single-id touches, ids/s" "$(per_s "$ls")" "$(per_s "$rs")" \
        "$(per_s "$es")" "$(ratio "$ls" "$rs")" "$(ratio "$ls" "$es")"
    row "(a) batched ack p99, ms" \
        "$(us_ms "$(median lapse_batched_p99_us)")" "" "" "" ""
    row "(b) single-id ack p99, ms" "$lp99" "$rp99" "" \
        "$(ratio "$lp99" "$rp99")" ""
    row "paced at $(per_s "$paced_rate"): achieved" \
        "$(per_s "$(median lapse_paced_ids_per_s)")" "" "" "" ""
    row "paced: ack p50 / p99 / max, ms" \
        "$(us_ms "$(median lapse_paced_p50_us)") / $(us_ms \
        "$(median lapse_paced_p99_us)") / $(us_ms \
        "$(median lapse_paced_max_us)")" "" "" "" ""
    row "(c) stale, of all" "$stale of $population clients" \
        "$stale of $population keys" \
        "$etcd_stale of $etcd_population leases" "" ""
    row "(c) removed by the sweep" "$(median lapse_sweep_evicted)" "" "" \
        "" ""
    row "(c) first event after the tick (or due time), ms" \
        "$(median lapse_sweep_first_ms)" "$(median redis_expiry_first_ms)" \
        "" "" ""
    row "(c) last event at a subscriber, ms" \
        "$(median lapse_sweep_subscriber_ms)" "$redis_done" \
        "$(median etcd_expiry_done_ms)" "" ""
    row "(c) events received within 30 s" "$(median lapse_sweep_events)" \
        "$(median redis_expired_30s)" "$(median etcd_deleted) (no limit)" \
        "" ""
    row "(c) last line in the audit file, ms" \
        "$(median lapse_sweep_audit_ms)" "" "" "" ""
    row "(c) the registry's own sweep, ms" \
        "$(median lapse_sweep_registry_ms)" "" "" "" ""
    row "(f) ack p99 at $(per_s "$sweep_rate") outside the sweep, ms" \
        "$(us_ms "$(median lapse_sweep_touch_outside_p99_us)")" "" "" "" ""
    row "(f) ack p99 / max during the sweep, ms" \
        "$(us_ms "$(median lapse_sweep_touch_p99_us)") / $(us_ms \
        "$(median lapse_sweep_touch_max_us)")" "" "" "" ""
    row "(d) RSS at $population clients or keys, MiB" "$rss" "$rrss" "" \
        "$(ratio "$rss" "$rrss")" ""
    row "(e) restart to the first touch served, ms" \
        "$(median lapse_restart_ms)" "" "" "" ""
    row "(e) of which loading the clients, ms" "$(median lapse_load_ms)" \
        "" "" "" ""
    row "(e) clean stop after the batched run, ms" \
        "$(median lapse_stop_ms)" "" "" "" ""
    row "loading the population, per second" "$(per_s "$lreg") register" \
        "$(per_s "$rload") SET" "$(per_s "$egrant") grant and put" \
        "$(ratio "$lreg" "$rload")" "$(ratio "$lreg" "$egrant")"
}

targets_table() {
    local lb rp ls rs pp swp sub aud worst rss rrss restart
    lb=$(median lapse_batched_ids_per_s)
    rp=$(median redis_pipelined_per_s)
    ls=$(median lapse_single_ids_per_s)
    rs=$(median redis_single_per_s)
    pp=$(median lapse_paced_p99_us)
    swp=$(median lapse_sweep_touch_p99_us)
    sub=$(median lapse_sweep_subscriber_ms)
    aud=$(median lapse_sweep_audit_ms)
    worst=$(awk -v a="$sub" -v b="$aud" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "n/a"
        else print (a > b ? a : b) }')
    rss=$(median lapse_rss_mib)
    rrss=$(median redis_rss_mib)
    restart=$(median lapse_restart_ms)
    local vs_redis single
    vs_redis=$(ratio "$lb" "$rp")
    single=$(ratio "$ls" "$rs")

    row target measured "measured / target" ""
    row --- --- --- ---
    row "batched touches ≥ 3M ids/s, flushing on" "$(per_s "$lb")" \
        "$(ratio "$lb" 3000000)" "$(check "$lb" ">=" 3000000)"
    row "batched touches ≥ 6x Redis pipelined" "${vs_redis}x" \
        "$(ratio "$vs_redis" 6)" "$(check "$vs_redis" ">=" 6)"
    row "single-id touches ≥ Redis unpipelined" "${single}x" "$single" \
        "$(check "$single" ">=" 1)"
    row "ack p99 < 1 ms at $(per_s "$paced_rate") paced" \
        "$(us_ms "$pp") ms" "$(ratio "$pp" 1000)" "$(check "$pp" "<" 1000)"
    row "ack p99 < 5 ms during a sweep of $stale" "$(us_ms "$swp") ms" \
        "$(ratio "$swp" 5000)" "$(check "$swp" "<" 5000)"
    local label="$stale evictions at a subscriber and in the audit file"
    row "$label within 2 s of the tick" "$sub ms and $aud ms" \
        "$(ratio "$worst" 2000)" "$(check "$worst" "<=" 2000)"
    row "registry RSS at $population clients < 100 MiB" "$rss MiB" \
        "$(ratio "$rss" 100)" "$(check "$rss" "<" 100)"
    row "registry RSS below Redis's" "$rss vs $rrss MiB" \
        "$(ratio "$rss" "$rrss")" "$(check "$rss" "<" "$rrss")"
    row "restart on $population clients serves touches within 1 s" \
        "$restart ms" "$(ratio "$restart" 1000)" \
        "$(check "$restart" "<=" 1000)"
}
write_doc() {
    local doc="$root/docs/benchmarks.md"
    {
    cat <<DOC
# Benchmarks

How \`lapse-registry\` compares with Redis (keys under \`EXPIRE\` and
keyspace notifications) and etcd (leases, keepalives and watches) at
the same job: many clients touched often, the silent ones removed and
announced.  Every figure below comes from one run of \`bench/run.sh\`
on the machine described, with all three systems measured in the same
run on the same machine, in $(rounds) of every workload (the tables
show medians; the last section lists every round).

**Read the ratios, not the absolute figures.**
$(machine_sentence)
Absolute figures move from run to run; the ratios within one run are
what counts.  Where a target is missed, the section after the targets
says why.

Rerun everything with \`bench/run.sh\` (it took $(( (run_seconds + 59) / 60 ))
minutes here; $(env_line)); the scale is set by the environment
variables listed at its top, and
\`bench/run.sh --smoke\` runs every Lapse workload at a tiny scale in
under a minute (CTest runs it, label \`bench\`).

Run on $(date -u +%Y-%m-%d) from commit \`$commit\`.

## Machine

| | |
| --- | --- |
$(machine_line)
| Redis | $(redis-server --version | sed 's/ sha=.*//') |
| etcd | $(etcd --version | head -n 1) |

## Figures

Medians of $(rounds).  Ratios are Lapse / peer: above 1 means Lapse
did more per second (or took longer, or used more, for times and
memory).

$(figures_table)

## Targets

$(targets_table)

## Why a target can fall short here

- **Single-id touches.** With one id per message and one message in
  flight per connection, the rate is the number of connections over
  the round trip.  On two cores that round trip is mostly waiting for a
  core.  Every request passes the load generator's thread, its ZeroMQ
  I/O thread, the registry's ZeroMQ I/O thread and the registry's loop,
  each a wake-up and a context switch, while Redis replies on one
  thread straight from the socket.  The registry is built for ids
  batched into messages, as the library's touch batcher sends them.
- **Paced latency.** At a million ids a second the load generator, the
  two ZeroMQ I/O threads and the registry's loop share two cores, so
  the slowest percent of acknowledgements waits for a core.  The store
  is off that path: flushes and sweeps run on the registry's store
  thread, at a lower priority than the loop.
- **Sweep and delivery.** The removals run at the speed of SQLite
  deleting rows and writing event rows, one transaction per batch on
  one thread.  On this machine that thread shares the two cores with
  the touches, the audit logger and the subscriber receiving the
  events.

## What each workload does

Every system runs on 127.0.0.1 with its data in a temporary folder, as
a process of this run (no system service), and is stopped at the end.
Ids and keys are \`client:\` and twelve digits (19 bytes) everywhere.

- **Registry settings.** Its defaults, which in this run flushed
  activity to SQLite as \`$(flush_settings)\` (\`synchronous=NORMAL\` in
  WAL mode): a client's stored activity is rewritten once it lags by
  the granularity, at most flush-batch clients per flush, on the
  registry's store thread.  A sweep decides from the activity in
  memory, so it never waits for a flush.  The sweep workload adds
  \`--stale-after ${stale_after}s\` and \`--brake=off\` (the eviction
  brake caps a sweep at 20 % of the clients, which this workload
  reaches exactly).  The store is seeded once per run of the script by
  registering the population through the protocol, then copied fresh
  for every workload.
- **Redis settings.** \`--save ""\` and \`--appendonly yes
  --appendfsync everysec\`: an append-only file synced every second is
  the durability closest to the registry's flush every second, and no
  RDB snapshot forks in the middle of a run.  The pipelined run is
  repeated with the append-only file turned off (\`config set
  appendonly no\`) to show what it costs Redis.  The keys are loaded with
  \`redis-cli --pipe\` before the throughput runs (RSS is read then).
- **(a) batched touches.** $loadgens \`lapse-loadgen\` processes, each
  with $connections DEALER connections and $window messages of 100 ids
  in flight per connection, unpaced, for $duration, over the whole
  population.  Redis: \`redis-benchmark -P 16 -c 50 -r $population\` of
  \`SET client:__rand_int__ 1 EX 3600\` ($redis_pipelined commands).
  etcd: lease keepalives, 100 per request over 8 connections, through
  etcd's JSON gateway (see below), over $((etcd_population - etcd_stale))
  leases.
- **(b) single-id touches.** One \`lapse-loadgen\` with
  $single_connections connections, one id per message and one message in
  flight per connection.  Redis: the same \`redis-benchmark\` unpipelined
  (\`-P 1 -c $single_connections\`, $redis_single commands).  etcd: one
  keepalive per request, $single_connections connections.
- **Paced latency.** One \`lapse-loadgen\`, 8 connections, 100 ids per
  message, sending at $(per_s "$paced_rate") on a timer.  A message that
  came due while every window was full is timed from when it was due,
  so a stall is not hidden by the generator slowing down.
- **(c) sweep and delivery.** The registry starts on the seeded store;
  $active clients are touched at $(per_s "$sweep_rate") throughout (a
  rate the registry sustains here, so that each of them is touched
  well within its stale-after), the other $stale were last active at
  seeding.  After the start-up grace
  (stale-after since serving began) \`lapse-sweepwatch\` sends one tick
  and times the events to a liblapse subscriber (\`lapse_sub_t\`, live
  stream plus replay) and the lines \`lapse-audit\` appends to its file.
  Redis: $active keys with \`EX 3600\` and $stale with \`PXAT\` one
  common instant 5 s ahead; a \`redis-cli --csv psubscribe
  __keyevent@0__:expired\` subscriber counts \`expired\` notifications
  for 30 s after that instant (\`notify-keyspace-events Ex\`, default
  \`hz\`).  etcd, scaled down because granting is slow here
  ($(per_s "$(median etcd_grant_per_s)") lease grants with a key each):
  $((etcd_population - etcd_stale)) leases with a 1 h TTL and $etcd_stale
  with a 10 s TTL, each with a key; \`etcdctl watch --prefix client/\`
  counts DELETE events from the moment the last short lease was due.
  etcd revokes at most about 1,000 expired leases per second by design,
  so $stale would take over $((stale / 1000)) s.
- **(d) memory.** VmRSS of \`lapse-registry\` right after the batched run
  (every client touched, activity flushed), and of \`redis-server\`
  holding $population keys with a TTL.
- **(e) restart.** After the batched run the registry is stopped with
  SIGTERM and started again on the same store; the time is from
  launching it to the first touch it answers (\`lapse-loadgen --probe\`).
- **(f) latency during the sweep.** The paced touches of (c) report
  their p99 and maximum per 100 ms.  The touches in flight, or due,
  at any moment between the tick and the last event give the "during
  the sweep" p99 above; all the others give the p99 outside it.
- **etcd through its JSON gateway.** Debian packages neither etcd's
  \`benchmark\` tool nor a gRPC library for C, so \`lapse-etcdload\` sends
  keepalives as HTTP/1.1 POSTs to \`/v3/lease/keepalive\` (several JSON
  messages in one request body, answered on one gateway stream).  The
  gateway adds JSON and a gRPC hop that a native client would not pay,
  so the etcd figures understate what etcd can do with its own client;
  the gateway also drops the last answers of a stream whose request has
  ended, counted as errors ($(median etcd_batched_errors) in the median
  batched run).

## Latency during the sweep

![touch acknowledgement latency during a sweep](latency-during-sweep.png)

The data is in \`docs/latency-during-sweep.tsv\` (run 1): per 100 ms, the
ids acknowledged per second, p50, p99 and maximum latency in
microseconds, and whether the window lies between the tick and the last
event.

## Commands

The commands as run (run 1; later runs repeat them):

\`\`\`sh
$(sed "s|$work|\$WORK|g; s|$root/||g" "$commands_log")
\`\`\`

## Every round

| figure | rounds 1 to $runs |
| --- | --- |
DOC
    local key
    for key in $(printf '%s\n' "${!results[@]}" | sort); do
        printf '| %s |%s |\n' "$key" "${results[$key]}"
    done
    } > "$doc"
    log "wrote $doc"
}

# --------------------------------------------------------------------- main

build_tools
current_run=1
run_started=$(date +%s)
load_start=$(cut -d' ' -f1 /proc/loadavg)

if [ "$smoke" = 0 ]; then
    install_peers
    for p in "$port" $((port + 1)) $((port + 2)) "$redis_port" \
        "$etcd_port" $((etcd_port + 1)); do
        port_free "$p" || { echo "run.sh: port $p is in use" >&2; exit 1; }
    done
fi

lapse_seed
for current_run in $(seq 1 "$runs"); do
    log "run $current_run of $runs: Lapse"
    lapse_batched || true
    lapse_single || true
    lapse_paced || true
    lapse_sweep || true
    if [ "$smoke" = 0 ]; then
        log "run $current_run of $runs: Redis"
        redis_workloads || true
        log "run $current_run of $runs: etcd"
        etcd_workloads || true
    fi
done
load_end=$(cut -d' ' -f1 /proc/loadavg)
run_seconds=$(($(date +%s) - run_started))

if [ "$smoke" = 1 ]; then
    # No timing is asserted: only that every workload ran and counted.
    for key in lapse_register_per_s lapse_batched_ids_per_s \
        lapse_single_ids_per_s lapse_paced_ids_per_s lapse_rss_mib \
        lapse_restart_ms lapse_sweep_subscriber_ms lapse_sweep_audit_ms \
        lapse_sweep_touch_ids_per_s; do
        value=$(median "$key")
        printf '%-32s %s\n' "$key" "$value"
        [ "$value" != n/a ] || fail "no figure for $key"
    done
    [ "$(median lapse_batched_errors)" = 0 ] \
        || fail "batched touches had errors: $(median lapse_batched_errors)"
    [ "$(median lapse_sweep_events)" = "$stale" ] \
        || fail "subscriber got $(median lapse_sweep_events) of $stale events"
    [ "$(median lapse_sweep_audit_lines)" = "$stale" ] \
        || fail "audit file got $(median lapse_sweep_audit_lines) of $stale"
    if [ "$failures" -gt 0 ]; then
        grep -h -E 'level=(warn|error)' "$work"/*.log >&2 || true
        tail -n 3 "$work"/*.out >&2 || true
        echo "smoke: $failures failed" >&2
        exit 1
    fi
    echo "smoke: every Lapse workload ran"
    exit 0
fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null \
    || commit="$commit plus uncommitted changes"
cp "$work/timeline.tsv" "$root/docs/latency-during-sweep.tsv" 2>/dev/null \
    && plot_timeline "$root/docs/latency-during-sweep.tsv" \
        "$root/docs/latency-during-sweep.png"
write_doc
[ "$failures" -eq 0 ] || { echo "run.sh: $failures failures" >&2; exit 1; }
