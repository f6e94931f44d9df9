#!/usr/bin/env bash
# Soak: the memcached example and memcached 1.6, one after the other, each under the
# same memcaslap load for MINUTES (default 5), with the server's RSS, open fds and the
# ops/s memcaslap reports sampled every 5 s. Prints a summary table (first, median and
# last sample of each series, and the drift from first to last) and writes, under
# target/soak/<time>/, the samples (soak.csv) and a plot of the three series for both
# servers side by side (soak.svg). A leak shows as RSS or fds that keep growing.
#
#   bash bench/soak.sh            # 5 minutes each
#   bash bench/soak.sh 60         # an hour each
#   bash bench/soak.sh 30s        # a quick check of the script
#
# Not run by CI (it is long by design). Installs memcached, libmemcached-tools and
# python3 if missing. Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-5}
duration=$minutes
[[ $duration =~ ^[0-9]+$ ]] && duration="${duration}m" # or e.g. 30s

need=()
command -v memcached >/dev/null || need+=(memcached)
command -v memcaslap >/dev/null || need+=(libmemcached-tools)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -q "${need[@]}" >/dev/null
fi
cargo build -q --release -p evloop-examples --example memcached
example="${CARGO_TARGET_DIR:-target}/release/examples/memcached"
out="${CARGO_TARGET_DIR:-target}/soak/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
root=()
[ "$(id -u)" -eq 0 ] && root=(-u root)

soak() { # name command...
    local name=$1
    shift
    local port=$((20000 + RANDOM % 10000))
    "$@" -l 127.0.0.1 -p "$port" -U 0 -t 1 -m 64 -c 1024 &
    local pid=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    echo "soak: $name (pid $pid) on port $port for $duration" >&2
    memcaslap -s "127.0.0.1:$port" -t "$duration" -T 1 -c 16 -S 5s >"$out/$name.caslap" 2>&1 &
    local load=$!
    local start=$SECONDS
    : >"$out/$name.samples"
    while kill -0 "$load" 2>/dev/null; do
        local rss fds
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
        fds=$(ls "/proc/$pid/fd" | wc -l)
        echo "$((SECONDS - start)) $rss $fds" >>"$out/$name.samples"
        sleep 5
    done
    wait "$load" || true
    kill -INT "$pid"
    wait "$pid" || true
}

soak memcached memcached "${root[@]}"
soak evloop "$example"

python3 - "$out" <<'PY'
import os, re, sys
out = sys.argv[1]
servers = ["memcached", "evloop"]
data = {}
for s in servers:
    samples = [tuple(map(int, l.split())) for l in open(f"{out}/{s}.samples") if l.strip()]
    text = open(f"{out}/{s}.caslap", errors="replace").read()
    ops = []
    for block in text.split("Total Statistics")[1:]:
        m = re.search(r"^Period\s+(\d+)\s+(\d+)\s+(\d+)", block, re.M)
        if m:
            ops.append(int(m.group(3)))
    data[s] = {"t": [x[0] for x in samples], "rss": [x[1] for x in samples],
               "fds": [x[2] for x in samples], "ops": ops}
with open(f"{out}/soak.csv", "w") as f:
    f.write("server,series,index,value\n")
    for s in servers:
        for k in ("rss", "fds", "ops"):
            for i, v in enumerate(data[s][k]):
                f.write(f"{s},{k},{i},{v}\n")
def row(vals):
    if not vals:
        return "n/a"
    med = sorted(vals)[len(vals) // 2]
    return f"first {vals[0]:>9} median {med:>9} last {vals[-1]:>9} drift {vals[-1] - vals[0]:>+9}"
print(f"soak results in {out}")
for k, unit in (("rss", "KiB"), ("fds", "fds"), ("ops", "ops/s")):
    for s in servers:
        print(f"{k:>4} {s:>9}: {row(data[s][k])} {unit}")
# A small SVG: one panel per series, both servers in it.
W, H, P = 900, 220, 40
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{3 * H}" font-family="monospace" font-size="12">']
colors = {"memcached": "#1f77b4", "evloop": "#d62728"}
for panel, (k, unit) in enumerate((("rss", "RSS KiB"), ("fds", "open fds"), ("ops", "ops/s"))):
    y0 = panel * H
    allv = [v for s in servers for v in data[s][k]] or [0]
    lo, hi = min(allv), max(allv)
    hi = hi if hi > lo else lo + 1
    n = max(len(data[s][k]) for s in servers) or 1
    svg.append(f'<text x="{P}" y="{y0 + 15}">{unit} (min {lo}, max {hi})</text>')
    svg.append(f'<rect x="{P}" y="{y0 + 20}" width="{W - 2 * P}" height="{H - 50}" fill="none" stroke="#999"/>')
    for s in servers:
        vals = data[s][k]
        if not vals:
            continue
        pts = " ".join(
            f"{P + i * (W - 2 * P) / max(n - 1, 1):.1f},{y0 + 20 + (H - 50) * (1 - (v - lo) / (hi - lo)):.1f}"
            for i, v in enumerate(vals))
        svg.append(f'<polyline fill="none" stroke="{colors[s]}" stroke-width="1.5" points="{pts}"/>')
    for j, s in enumerate(servers):
        svg.append(f'<text x="{W - 200 + j * 90}" y="{y0 + 15}" fill="{colors[s]}">{s}</text>')
svg.append("</svg>")
open(f"{out}/soak.svg", "w").write("\n".join(svg))
print(f"plot: {out}/soak.svg")
PY
