#!/usr/bin/env bash
# Pipe-chain benchmark harness (protocol: bench/README.md, "The pipe chain" — libevent's
# test/bench.c as extended by libev's author).
#
# Implementations, all speaking the same flags and printing the same SUMMARY line:
#   evloop     target/release/pipechain -b epoll   (this project; more backends via
#              EXTRA_EVLOOP_BACKENDS="uring poll select", shown as evloop-uring, ...;
#              "raw" adds evloop-raw (-b epoll --api raw) and "uring-completion" adds
#              io_uring's completion I/O (-b uring --api completion, the raw machine with
#              no read or write call); the counting modes --callgrind and --strace
#              include them too)
#   libev      bench/out/pipechain_libev           (libev 4, bench/c/pipechain_libev.c)
#   libevent   bench/out/pipechain_libevent        (libevent 2.1, bench/c/pipechain_libevent.c)
#   mio        target/release/pipechain-mio        (mio 1.x, bench/src/bin/pipechain_mio.rs)
#   raw-epoll  bench/out/pipechain_epoll           (hand-written epoll loop in C)
#
# Usage: bench/pipechain.sh [--smoke | --callgrind | --strace | --api-compare]
#
#   (default)    Wall-clock table. For n in {100,1000,9980}, a in {1,100}, t in {0,1}, run
#                every implementation ROUNDS times (default 3), interleaved (all
#                implementations once per round, in a rotating order), each with
#                -i ITERS (default 25) -w 100. A cell is the median over rounds of the
#                SUMMARY's run_ns_per_event (itself the median over iterations). Ratios
#                are evloop / other, computed from the medians of the same run: on a noisy
#                shared machine only same-run ratios mean anything.
#   --smoke      Quick correctness check (CI): n=20 a=2 w=50 -i 2, with and without -t,
#                every implementation (evloop with -b epoll, poll and select, --api trait).
#                Each must exit 0 and print exactly one SUMMARY line with failures=0 and
#                timeouts_fired=0. Exits non-zero otherwise.
#   --callgrind  Marginal user-space instructions per event, a figure that is stable on a
#                noisy machine: at n=1000 -i 5, run under `valgrind --tool=callgrind`
#                with -w 100 and with -w 2100; (Ir(2100) - Ir(100)) / (2000 * iters)
#                cancels start-up, socket creation and setup, leaving the cost of one
#                more event (read + forward write + loop overhead, + timer re-arm with -t).
#   --strace     Marginal syscalls per event, the same way: at n=1000 a=100 -i 5, with
#                and without -t, `strace -c -f` with -w 100 and -w 2100; the difference of
#                the call counts / (2000 * iters), in total and for the dominant syscalls.
#   --api-compare  Is #[event_machine] free? The hand-written machine (evloop, --api trait)
#                against the same machine from the macro (evloop-macro, --api macro) at
#                n in {1000, 9980}, a=100, with and without -t: ROUNDS (default 9)
#                interleaved rounds, median ns/event and their ratio, then marginal
#                instructions per event under callgrind and their ratio.
#
# Environment: ROUNDS, ITERS (default mode), EXTRA_EVLOOP_BACKENDS, NO_CARGO_BUILD=1 (use
# the Rust binaries already in ${CARGO_TARGET_DIR:-target}/release), CARGO_TARGET_DIR.
#
# Packages (gcc, libevent-dev, libev-dev; valgrind / strace only for their modes) are
# installed with apt-get if missing. The benchmark only uses socketpairs: nothing is bound
# on the network.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT=$HERE/out
RBIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

MODE=default
case "${1:-}" in
    "") ;;
    --smoke) MODE=smoke ;;
    --callgrind) MODE=callgrind ;;
    --strace) MODE=strace ;;
    --api-compare) MODE=apicompare ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--smoke | --callgrind | --strace | --api-compare]" >&2; exit 2 ;;
esac

warn() { echo "warning: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- dependencies

# install_missing PKG...: apt-get install the packages that are not installed yet
# (`apt-get update` runs once, and only if something has to be installed).
install_missing() {
    local missing=() p
    command -v dpkg-query >/dev/null || { warn "no dpkg: not checking for $*"; return 0; }
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "installing: ${missing[*]}" >&2
    # Wait for a concurrent apt/dpkg instead of failing on its lock.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        "${missing[@]}" >&2
}

pkgs=(gcc libc6-dev libevent-dev libev-dev)
[ "$MODE" = callgrind ] && pkgs+=(valgrind)
[ "$MODE" = apicompare ] && pkgs+=(valgrind)
[ "$MODE" = strace ] && pkgs+=(strace)
install_missing "${pkgs[@]}"

# ---------------------------------------------------------------- build

mkdir -p "$OUT"
CFLAGS=(-O2 -g -Wall -Wextra)
COMMON=("$HERE/c/pipechain_common.c")
gcc "${CFLAGS[@]}" -o "$OUT/pipechain_epoll" "$HERE/c/pipechain_epoll.c" "${COMMON[@]}"
gcc "${CFLAGS[@]}" -o "$OUT/pipechain_libev" "$HERE/c/pipechain_libev.c" "${COMMON[@]}" -lev
gcc "${CFLAGS[@]}" -o "$OUT/pipechain_libevent" "$HERE/c/pipechain_libevent.c" "${COMMON[@]}" \
    -levent_core

if [ "${NO_CARGO_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p evloop-bench)
fi
[ -x "$RBIN/pipechain-mio" ] || die "$RBIN/pipechain-mio missing (cargo build failed?)"
HAVE_EVLOOP=1
if [ ! -x "$RBIN/pipechain" ]; then
    warn "$RBIN/pipechain does not exist yet: skipping the evloop implementation"
    HAVE_EVLOOP=0
fi

# ---------------------------------------------------------------- implementations

# impl_cmd NAME: sets the array CMD to the command line of implementation NAME
# (evloop, evloop-BACKEND, libev, libevent, mio, raw-epoll).
impl_cmd() {
    case "$1" in
        evloop) CMD=("$RBIN/pipechain" -b epoll --api trait) ;;
        evloop-macro) CMD=("$RBIN/pipechain" -b epoll --api macro) ;;
        evloop-raw) CMD=("$RBIN/pipechain" -b epoll --api raw) ;;
        # io_uring's completion I/O: the raw machine with no read or write call.
        evloop-uring-completion) CMD=("$RBIN/pipechain" -b uring --api completion) ;;
        evloop-*) CMD=("$RBIN/pipechain" -b "${1#evloop-}" --api trait) ;;
        libev) CMD=("$OUT/pipechain_libev") ;;
        libevent) CMD=("$OUT/pipechain_libevent") ;;
        mio) CMD=("$RBIN/pipechain-mio") ;;
        raw-epoll) CMD=("$OUT/pipechain_epoll") ;;
        *) die "unknown implementation $1" ;;
    esac
}

# field LINE KEY: the value of KEY=VALUE in a SUMMARY line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# align [COLS]: aligns tab-separated columns (stdin to stdout); right-aligned, except the
# columns listed in COLS (comma-separated numbers), which are left-aligned.
align() {
    awk -F'\t' -v left=",${1:-}," '
        { row[NR] = $0; for (i = 1; i <= NF; i++) if (length($i) > w[i]) w[i] = length($i) }
        END { for (r = 1; r <= NR; r++) { n = split(row[r], c, "\t"); line = ""
            for (i = 1; i <= n; i++)
                line = line sprintf(index(left, "," i ",") ? "%s%-*s" : "%s%*s",
                                    i > 1 ? "  " : "", w[i], c[i])
            sub(/ +$/, "", line); print line } }'
}

# median of the numbers given as arguments ("-" if none).
median() {
    [ $# -eq 0 ] && { echo -; return; }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A / B with two decimals ("-" if either is missing).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }

# run_summary NAME ARGS...: runs implementation NAME; prints its SUMMARY line, or nothing
# (and a warning) if it failed.
run_summary() {
    local name=$1 out rc=0
    shift
    impl_cmd "$name"
    out=$(timeout 600 "${CMD[@]}" "$@" 2>&1) || rc=$?
    if [ $rc -ne 0 ]; then
        warn "$name $* exited with $rc: $(grep SUMMARY <<<"$out" || tail -n 3 <<<"$out")"
        return 0
    fi
    grep '^SUMMARY ' <<<"$out" || warn "$name $*: no SUMMARY line"
}

# ---------------------------------------------------------------- --smoke

smoke() {
    local impls=(libev libevent mio raw-epoll) t name out rc lines pass=0 fail=0
    [ $HAVE_EVLOOP = 1 ] && impls=(evloop evloop-macro evloop-raw evloop-poll evloop-select "${impls[@]}")
    # io_uring where the kernel allows it (a container's seccomp profile may refuse it).
    if [ $HAVE_EVLOOP = 1 ] && "$RBIN/pipechain" -b uring -n 2 -a 1 -w 1 -i 1 >/dev/null 2>&1; then
        impls=(evloop-uring evloop-uring-completion "${impls[@]}")
    fi
    for t in 0 1; do
        local targs=()
        [ $t = 1 ] && targs=(-t)
        for name in "${impls[@]}"; do
            impl_cmd "$name"
            rc=0
            out=$(timeout 60 "${CMD[@]}" -n 20 -a 2 -w 50 -i 2 "${targs[@]}" 2>&1) || rc=$?
            lines=$(grep -c '^SUMMARY ' <<<"$out" || true)
            local s
            s=$(grep '^SUMMARY ' <<<"$out" | head -n 1 || true)
            if [ $rc -eq 0 ] && [ "$lines" -eq 1 ] && [ "$(field "$s" failures)" = 0 ] &&
                [ "$(field "$s" timeouts_fired)" = 0 ] && [ "$(field "$s" t)" = $t ]; then
                echo "PASS $name t=$t: $s"
                pass=$((pass + 1))
            else
                echo "FAIL $name t=$t (exit $rc, $lines SUMMARY lines):"
                tail -n 20 <<<"$out" | sed 's/^/    /'
                fail=$((fail + 1))
            fi
        done
    done
    echo "pipechain smoke: $pass passed, $fail failed"
    [ $fail -eq 0 ]
}

# ---------------------------------------------------------------- default (wall clock)

wallclock() {
    local rounds=${ROUNDS:-3} iters=${ITERS:-25}
    local impls=(libev libevent mio raw-epoll) evs=() b
    if [ $HAVE_EVLOOP = 1 ]; then
        evs=(evloop evloop-macro)
        for b in ${EXTRA_EVLOOP_BACKENDS:-}; do evs+=("evloop-$b"); done
    fi
    impls=("${evs[@]}" "${impls[@]}")
    local -A NS=() SETUP=()
    local n a t r k name s failed=0

    echo "pipe chain, wall clock: -w 100 -i $iters, $rounds round(s), median over rounds of" \
        "the median run time per event (ns); load: $(cut -d' ' -f1-3 /proc/loadavg)"
    for n in 100 1000 9980; do
        for a in 1 100; do
            for t in 0 1; do
                local targs=()
                [ $t = 1 ] && targs=(-t)
                for ((r = 0; r < rounds; r++)); do
                    # Rotate the order every round so no implementation always runs first.
                    for ((k = 0; k < ${#impls[@]}; k++)); do
                        name=${impls[$(((k + r) % ${#impls[@]}))]}
                        s=$(run_summary "$name" -n $n -a $a -w 100 -i "$iters" "${targs[@]}")
                        if [ -z "$s" ]; then
                            failed=1
                            continue
                        fi
                        NS[$n/$a/$t/$name]+=" $(field "$s" run_ns_per_event)"
                        SETUP[$n/$a/$t/$name]+=" $(field "$s" setup_us_med)"
                    done
                done
                echo "  done n=$n a=$a t=$t" >&2
            done
        done
    done

    # Table: tab-separated cells, aligned by `align`.
    local others=(libev libevent mio raw-epoll) o line med ev
    {
        line="n\ta\tt"
        for name in "${impls[@]}"; do line+="\t$name"; done
        for o in "${others[@]}"; do line+="\tev/$o"; done
        echo -e "$line\tmacro/trait\tsetup_us:evloop\tsetup_us:libev"
        for n in 100 1000 9980; do
            for a in 1 100; do
                for t in 0 1; do
                    local -A M=()
                    line="$n\t$a\t$t"
                    for name in "${impls[@]}"; do
                        # shellcheck disable=SC2086 # word splitting of the value list is wanted
                        med=$(median ${NS[$n/$a/$t/$name]:-})
                        M[$name]=$med
                        line+="\t$(awk -v v="$med" 'BEGIN {
                            if (v == "-") print "-"; else printf "%.0f", v }')"
                    done
                    ev=${M[evloop]:--}
                    for o in "${others[@]}"; do line+="\t$(ratio "$ev" "${M[$o]}")"; done
                    line+="\t$(ratio "${M[evloop-macro]:--}" "$ev")"
                    # shellcheck disable=SC2086
                    line+="\t$(median ${SETUP[$n/$a/$t/evloop]:-})"
                    # shellcheck disable=SC2086
                    line+="\t$(median ${SETUP[$n/$a/$t/libev]:-})"
                    echo -e "$line"
                done
            done
        done
    } | align
    echo "(ns/event: lower is better; evloop = the hand-written machine (--api trait)," \
        "evloop-macro = the same machine from #[event_machine]; ev/X < 1 means evloop is" \
        "faster than X; setup_*: median setup time in us)"
    [ $failed -eq 0 ] || die "some runs failed (see warnings above)"
}

# ---------------------------------------------------------------- --callgrind / --strace

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

MARGINAL_ITERS=5

# all implementations for the counting modes
count_impls() {
    local impls=(libev libevent mio raw-epoll) evs=() b
    if [ $HAVE_EVLOOP = 1 ]; then
        evs=(evloop)
        for b in ${EXTRA_EVLOOP_BACKENDS:-}; do evs+=("evloop-$b"); done
    fi
    echo "${evs[@]}" "${impls[@]}"
}

# callgrind_ir NAME ARGS...: total Ir of one run under callgrind ("-" on failure).
callgrind_ir() {
    local name=$1 f=$TMP/callgrind.out
    shift
    impl_cmd "$name"
    rm -f "$f"
    if ! valgrind --tool=callgrind --callgrind-out-file="$f" "${CMD[@]}" "$@" \
        >"$TMP/cg.log" 2>&1 || ! grep -q '^SUMMARY .*timeouts_fired=0 failures=0' "$TMP/cg.log"; then
        warn "$name $* failed under callgrind: $(grep SUMMARY "$TMP/cg.log" || tail -n 3 "$TMP/cg.log")"
        echo -
        return
    fi
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f"
}

callgrind() {
    local impls name cfg line lo hi
    read -r -a impls <<<"$(count_impls)"
    local configs=("-a 100" "-a 100 -t" "-a 1" "-a 1 -t")
    echo "marginal user-space instructions per event (callgrind Ir), n=1000 -i $MARGINAL_ITERS:"
    echo "(Ir(-w 2100) - Ir(-w 100)) / (2000 * $MARGINAL_ITERS)"
    {
        line=config
        for name in "${impls[@]}"; do line+="\t$name"; done
        echo -e "$line"
        for cfg in "${configs[@]}"; do
            line=$cfg
            for name in "${impls[@]}"; do
                # shellcheck disable=SC2086 # cfg is a list of flags
                lo=$(callgrind_ir "$name" -n 1000 -i $MARGINAL_ITERS -w 100 $cfg)
                # shellcheck disable=SC2086
                hi=$(callgrind_ir "$name" -n 1000 -i $MARGINAL_ITERS -w 2100 $cfg)
                line+="\t$(awk -v lo="$lo" -v hi="$hi" -v d=$((2000 * MARGINAL_ITERS)) 'BEGIN {
                    if (lo == "-" || hi == "-") print "-"; else printf "%.0f", (hi - lo) / d }')"
            done
            echo -e "$line"
        done
    } | align 1
}

# strace_counts NAME ARGS...: "syscall calls" lines of one run under strace -c -f.
strace_counts() {
    local name=$1 f=$TMP/strace.out
    shift
    impl_cmd "$name"
    if ! strace -c -f -o "$f" "${CMD[@]}" "$@" >"$TMP/st.log" 2>&1 ||
        ! grep -q '^SUMMARY .*timeouts_fired=0 failures=0' "$TMP/st.log"; then
        warn "$name $* failed under strace: $(grep SUMMARY "$TMP/st.log" || tail -n 3 "$TMP/st.log")"
        return 0
    fi
    # Table rows: "% time seconds usecs/call calls [errors] syscall"; calls is field 4.
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 { print $NF, $4 }' "$f"
}

strace_mode() {
    local impls name cfg d=$((2000 * MARGINAL_ITERS))
    read -r -a impls <<<"$(count_impls)"
    echo "marginal syscalls per event (strace -c -f), n=1000 a=100 -i $MARGINAL_ITERS:"
    echo "(calls(-w 2100) - calls(-w 100)) / (2000 * $MARGINAL_ITERS); dominant syscalls per event"
    {
        echo -e "impl\tconfig\tsyscalls/event\ttop syscalls (per event)"
        for cfg in "-a 100" "-a 100 -t"; do
            for name in "${impls[@]}"; do
                # shellcheck disable=SC2086 # cfg is a list of flags
                strace_counts "$name" -n 1000 -i $MARGINAL_ITERS -w 100 $cfg >"$TMP/lo"
                # shellcheck disable=SC2086
                strace_counts "$name" -n 1000 -i $MARGINAL_ITERS -w 2100 $cfg >"$TMP/hi"
                if [ ! -s "$TMP/lo" ] || [ ! -s "$TMP/hi" ]; then
                    echo -e "$name\t$cfg\t-\t-"
                    continue
                fi
                # Per syscall: (hi - lo) / d, sorted by rate; the "total" row is the overall
                # figure. Rates under 0.005 per event are left out of the list.
                awk -v d=$d -v name="$name" -v cfg="$cfg" '
                    FNR == NR { lo[$1] = $2; next }
                    { diff[$1] = ($2 - lo[$1]) / d }
                    END {
                        n = 0
                        for (s in diff) if (s != "total" && diff[s] >= 0.005) keys[++n] = s
                        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                            if (diff[keys[j]] > diff[keys[i]]) { x = keys[i]; keys[i] = keys[j]; keys[j] = x }
                        top = ""
                        for (i = 1; i <= n && i <= 4; i++)
                            top = top sprintf("%s%s %.2f", i > 1 ? ", " : "", keys[i], diff[keys[i]])
                        printf "%s\t%s\t%.2f\t%s\n", name, cfg, diff["total"], top
                    }' "$TMP/lo" "$TMP/hi"
            done
        done
    } | align 1,2,4
}

# ---------------------------------------------------------------- --api-compare

# Is #[event_machine] free? The hand-written machine (--api trait) against the same
# machine from the macro (--api macro): wall clock over many interleaved rounds (median
# and ratio), then marginal instructions per event under callgrind (stable).
apicompare() {
    local rounds=${ROUNDS:-9} iters=${ITERS:-25} n t r name s lo hi
    local -A NS=() IR=()
    echo "#[event_machine] vs the hand-written trait impl, -a 100 -w 100 -i $iters," \
        "$rounds interleaved rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    {
        echo -e "n\tt\ttrait ns/ev\tmacro ns/ev\tmacro/trait\ttrait Ir/ev\tmacro Ir/ev\tIr macro/trait"
        for n in 1000 9980; do
            for t in 0 1; do
                local targs=()
                [ $t = 1 ] && targs=(-t)
                for ((r = 0; r < rounds; r++)); do
                    for name in evloop evloop-macro; do
                        [ $((r % 2)) = 1 ] && name=$([ $name = evloop ] && echo evloop-macro || echo evloop)
                        s=$(run_summary "$name" -n $n -a 100 -w 100 -i "$iters" "${targs[@]}")
                        NS[$name]+=" $(field "$s" run_ns_per_event)"
                    done
                done
                for name in evloop evloop-macro; do
                    lo=$(callgrind_ir "$name" -n $n -i $MARGINAL_ITERS -w 100 -a 100 "${targs[@]}")
                    hi=$(callgrind_ir "$name" -n $n -i $MARGINAL_ITERS -w 2100 -a 100 "${targs[@]}")
                    IR[$name]=$(awk -v lo="$lo" -v hi="$hi" -v d=$((2000 * MARGINAL_ITERS)) 'BEGIN {
                        if (lo == "-" || hi == "-") print "-"; else printf "%.1f", (hi - lo) / d }')
                done
                # shellcheck disable=SC2086
                local mt mm
                mt=$(median ${NS[evloop]}) mm=$(median ${NS[evloop-macro]})
                echo -e "$n\t$t\t$mt\t$mm\t$(ratio "$mm" "$mt")\t${IR[evloop]}\t${IR[evloop-macro]}\t$(awk -v a="${IR[evloop-macro]}" -v b="${IR[evloop]}" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f", a / b }')"
                NS=()
            done
        done
    } | align
}

case "$MODE" in
    apicompare) apicompare ;;
    smoke) smoke ;;
    default) wallclock ;;
    callgrind) callgrind ;;
    strace) strace_mode ;;
esac
