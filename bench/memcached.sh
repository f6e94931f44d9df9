#!/usr/bin/env bash
# The server benchmark of bench/README.md: the memcached example against
# memcached 1.6, one worker thread each, the same memcaslap load, alternating rounds.
# The example runs twice: on epoll (the default backend) and on io_uring with its
# completion I/O (built with the `backend-uring` feature: no read, write or accept
# syscall per request); URING=0 leaves the second out.
#
#   bash bench/memcached.sh            # ROUNDS (default 3) rounds of 10 s each
#   bash bench/memcached.sh --quick    # rounds of 2 s: a smoke run
#
# Prints each round's ops/s (memcaslap's TPS), the medians and the ratio (ours /
# memcached), with the io_uring build's figures after them; then syscalls per request
# of both builds (strace -c -f over one memcaslap run, divided by its ops); then each
# server's RSS with 10k idle connections (KiB per connection).
# Those "round N:", "median:" and "idle RSS:" lines are the raw figures that
# bench/plot_memcached.py parses: keep their format, or update its patterns with them.
#   bash bench/memcached.sh | tee bench/results/memcached-$(date +%F).txt
# Installs memcached, libmemcached-tools (memcaslap) and python3 if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10s
if [[ ${1:-} == --quick ]]; then DURATION=2s; fi
ROUNDS=${ROUNDS:-3}
IDLE=${IDLE:-10000}
MC_PORT=${MC_PORT:-21211}
EV_PORT=${EV_PORT:-21212}

need=()
command -v memcached >/dev/null || need+=(memcached)
command -v memcaslap >/dev/null || need+=(libmemcached-tools)
command -v python3 >/dev/null || need+=(python3)
if [[ ${URING:-1} == 1 ]]; then command -v strace >/dev/null || need+=(strace); fi
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    # apt-get update only when the install fails without it.
    apt-get -o DPkg::Lock::Timeout=600 install -y -q "${need[@]}" >/dev/null 2>&1 || {
        apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
        apt-get -o DPkg::Lock::Timeout=600 install -y -q "${need[@]}" >/dev/null
    }
fi

cargo build --release -q -p evloop-examples --example memcached
OURS=target/release/examples/memcached
URING=${URING:-1}
if [[ $URING == 1 ]]; then
    # The same example on io_uring: its own target dir, so the default build stays.
    CARGO_TARGET_DIR=target/uring cargo build --release -q -p evloop-examples \
        --example memcached --features evloop/backend-uring
    OURS_URING=target/uring/release/examples/memcached
fi
UR_PORT=${UR_PORT:-21213}

# 10k idle connections need fds: raise our soft limit (inherited by the servers).
ulimit -n "$(ulimit -Hn)"

user=()
if [[ $(id -u) == 0 ]]; then user=(-u root); fi
ARGS=(-l 127.0.0.1 -U 0 -t 1 -m 64 -c $((IDLE + 1000)))

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start NAME PORT: starts that server in the background; sets $pid.
start() {
    case $1 in
        memcached) memcached "${user[@]}" "${ARGS[@]}" -p "$2" & ;;
        evloop) "$OURS" "${ARGS[@]}" -p "$2" & ;;
        evloop-uring) "$OURS_URING" "${ARGS[@]}" -p "$2" & ;;
    esac
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "$1 did not start on port $2" >&2
    exit 1
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# tps PORT: one memcaslap run; prints its TPS.
tps() {
    memcaslap -s "127.0.0.1:$1" -t "$DURATION" -T 1 -c 16 2>&1 |
        awk '/TPS:/ { for (i = 1; i <= NF; i++) if ($i == "TPS:") t = $(i + 1) } END { print t + 0 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

echo "memcached $(memcached -V | awk '{print $2}') vs evloop memcached example; memcaslap -t $DURATION -T 1 -c 16; $ROUNDS rounds"
start memcached "$MC_PORT"; mc_pid=$pid
start evloop "$EV_PORT"; ev_pid=$pid

if [[ $URING == 1 ]]; then start evloop-uring "$UR_PORT"; ur_pid=$pid; fi

mc_all=(); ev_all=(); ur_all=()
for r in $(seq 1 "$ROUNDS"); do
    # Rotate which goes first, so none always runs on a warmer machine.
    order=(m e u)
    for ((k = 0; k < r % 3; k++)); do order=("${order[@]:1}" "${order[0]}"); done
    u=0
    for w in "${order[@]}"; do
        case $w in
            m) m=$(tps "$MC_PORT") ;;
            e) e=$(tps "$EV_PORT") ;;
            u) if [[ $URING == 1 ]]; then u=$(tps "$UR_PORT"); fi ;;
        esac
    done
    mc_all+=("$m"); ev_all+=("$e"); ur_all+=("$u")
    line=$(printf 'round %d: memcached %8d ops/s   evloop %8d ops/s' "$r" "$m" "$e")
    if [[ $URING == 1 ]]; then line+=$(printf '   evloop-uring %8d ops/s' "$u"); fi
    echo "$line"
done
mc_med=$(printf '%s\n' "${mc_all[@]}" | median)
ev_med=$(printf '%s\n' "${ev_all[@]}" | median)
ratio=$(awk -v e="$ev_med" -v m="$mc_med" 'BEGIN { printf "%.2f", (m > 0) ? e / m : 0 }')
line=$(printf 'median:  memcached %8d ops/s   evloop %8d ops/s   ratio %sx' "$mc_med" "$ev_med" "$ratio")
if [[ $URING == 1 ]]; then
    ur_med=$(printf '%s\n' "${ur_all[@]}" | median)
    line+=$(awk -v u="$ur_med" -v e="$ev_med" -v m="$mc_med" 'BEGIN {
        printf "   evloop-uring %8d ops/s   uring/epoll %.2fx   uring/memcached %.2fx",
            u, (e > 0) ? u / e : 0, (m > 0) ? u / m : 0 }')
fi
echo "$line"
stop "$mc_pid"; stop "$ev_pid"
if [[ $URING == 1 ]]; then stop "$ur_pid"; fi

# Syscalls per request: each build under strace -c -f for one memcaslap run.
syscalls_per_request() {
    local name=$1 port=$2 out ops
    out=$(mktemp)
    case $name in
        evloop) strace -c -f -o "$out" "$OURS" "${ARGS[@]}" -p "$port" & ;;
        evloop-uring) strace -c -f -o "$out" "$OURS_URING" "${ARGS[@]}" -p "$port" & ;;
    esac
    local spid=$!
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.05
    done
    ops=$(memcaslap -s "127.0.0.1:$port" -t "$DURATION" -T 1 -c 16 2>&1 |
        awk '/Ops:/ { for (i = 1; i <= NF; i++) if ($i == "Ops:") o = $(i + 1) } END { print o + 0 }')
    # The server (strace's child) ends on SIGINT; strace then writes its summary.
    pkill -INT -P "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    awk -v ops="$ops" -v name="$name" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 { calls[$NF] = $4 }
        END {
            split("read readv write writev sendmsg recvfrom epoll_wait io_uring_enter", names, " ")
            top = ""
            for (i = 1; i in names; i++) if (calls[names[i]] > 0)
                top = top sprintf("%s%s %.3f", top == "" ? "" : ", ", names[i], calls[names[i]] / ops)
            printf "syscalls: %-12s %.3f per request (%d ops; %s)\n", name, (ops > 0) ? calls["total"] / ops : 0, ops, top
        }' "$out"
    rm -f "$out"
}
if [[ $URING == 1 ]]; then
    syscalls_per_request evloop "$EV_PORT"
    syscalls_per_request evloop-uring "$UR_PORT"
fi

# RSS with $IDLE idle connections, each server fresh.
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
for name in memcached evloop; do
    port=$MC_PORT; [[ $name == evloop ]] && port=$EV_PORT
    start "$name" "$port"; spid=$pid
    before=$(rss "$spid")
    coproc CLIENT { python3 bench/idle_conns.py 127.0.0.1 "$port" "$IDLE"; }
    read -r line <&"${CLIENT[0]}" || line=
    if [[ $line != ready ]]; then echo "idle client failed for $name" >&2; exit 1; fi
    after=$(rss "$spid")
    exec {CLIENT[1]}>&-
    wait "$CLIENT_PID" 2>/dev/null || true
    stop "$spid"
    per=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.2f", (a - b) / n }')
    printf 'idle RSS: %-9s %7d KiB before, %7d KiB with %d idle connections: %s KiB per connection\n' \
        "$name" "$before" "$after" "$IDLE" "$per"
done
