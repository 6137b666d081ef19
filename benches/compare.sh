#!/usr/bin/env bash
# Whole-process comparison (issue 6), all on loopback, in one run:
#  1. nginx-rtmp on 127.0.0.1: pushprobe load (200 publishers) vs ffmpeg -re -c copy
#     (20 processes), same fixture, same duration: CPU ms per stream-second
#     (user + sys) and peak resident memory per publisher, with the ratios.
#  2. 10,000 publishers of fixtures/low-240p.flv for 60 s, ramped at 1,000/s,
#     against the local ingest (`pushprobe serve`) in another process:
#     accepted count, max lag, client memory per publisher, both CPUs.
#  3. SRT (issue 17), into benches/srt_sink.c (a libsrt listener taking
#     every caller; SRT_SINK=tokio uses examples/srt_sink, an srt-tokio
#     one): pushprobe load (200 SRT publishers) vs ffmpeg
#     -re -c copy -f mpegts srt:// (20 processes), CPU per stream-second and
#     memory per publisher; then SRT_PUBLISHERS (2,000) SRT publishers in
#     real time from one process for 60 s: accepted, lag, retransmissions,
#     and what the sink received and dropped.
#
# Usage: benches/compare.sh [SECONDS] [SCALE_PUBLISHERS] [SRT_PUBLISHERS]
#   defaults: 30 s for parts 1 and 3, 10000 publishers for part 2 (0 skips
#   part 2), 2000 for part 4's SRT scale run (0 skips it); ONLY=srt runs part 4 (SRT) alone.
#   ONLY=viewers runs the viewers' bench (issue 13) instead: 10,000 viewers of
#   100 stamped low-240p streams relayed by `pushprobe serve`, the publishers'
#   and the viewers' CPU side by side in one run (benches/viewers.sh, which
#   takes VIEWER_RATE, PUB_RATE and RELAY).
# Needs: nginx-light, libnginx-mod-rtmp, ffmpeg, GNU time (apt: time), python3;
# part 4: gcc, pkg-config and libsrt's headers (apt: libsrt-openssl-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${ONLY:-}" = viewers ]; then
  RELAY=${RELAY:-serve} VIEWER_RATE=${VIEWER_RATE:-500} exec benches/viewers.sh 10000 100 30
fi
SECS=${1:-30}
SCALE=${2:-10000}
SRT_N=${3:-2000}
cargo build --release --quiet --bin pushprobe --example srt_sink
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
B=$TARGET/release/pushprobe
FIX=$PWD/fixtures/sd-360p.flv
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "fixture: $FIX ($(ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$FIX") bit/s)"

if [ "${ONLY:-}" != srt ]; then
# ---- part 1: nginx-rtmp, pushprobe vs ffmpeg ----
NP=$(free_port)
cat > "$WORK/n.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; pid $WORK/n.pid; error_log $WORK/err.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
rtmp { server { listen 127.0.0.1:$NP; application live { live on; record off; } } }
EOF
nginx -c "$WORK/n.conf" -p "$WORK" & PIDS+=($!)
wait_port "$NP"

N_PP=200
/usr/bin/time -f "%U %S %M" -o "$WORK/pp.time" \
  "$B" load --url-template "rtmp://127.0.0.1:$NP/live/pp{i}" --publishers $N_PP --rate 200 \
  --duration "${SECS}s" --fixture "$FIX" --progress none --json-out "$WORK/pp.json" > "$WORK/pp.txt"

# Same run, every H.264 frame stamped (issue 13 budget: <= 1.5x the CPU).
/usr/bin/time -f "%U %S %M" -o "$WORK/pps.time" \
  "$B" load --url-template "rtmp://127.0.0.1:$NP/live/pps{i}" --publishers $N_PP --rate 200 \
  --duration "${SECS}s" --fixture "$FIX" --stamp --progress none --json-out "$WORK/pps.json" > "$WORK/pps.txt"

N_FF=20
for i in $(seq 1 $N_FF); do
  /usr/bin/time -f "%U %S %M" -o "$WORK/ff$i.time" \
    ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i "$FIX" -c copy -t "$SECS" \
    -f flv "rtmp://127.0.0.1:$NP/live/ff$i" &
  PIDS+=($!)
done
wait "${PIDS[@]:1}" 2>/dev/null || true

python3 - "$WORK" "$N_PP" "$N_FF" "$SECS" <<'PY'
import json, sys, glob
work, npp, nff, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
u, s, m = map(float, open(f"{work}/pp.time").read().split()[-3:])
rep = json.load(open(f"{work}/pp.json"))
pp_ss = rep["stream_seconds"]
pp_cpu = (u + s) * 1000 / pp_ss
pp_mem = m / npp
acc = rep["outcomes"].get("accepted", 0)
ff_cpu_s = ff_mem = 0.0
for f in glob.glob(f"{work}/ff*.time"):
    fu, fs, fm = map(float, open(f).read().split()[-3:])
    ff_cpu_s += fu + fs
    ff_mem += fm
ff_cpu = ff_cpu_s * 1000 / (nff * secs)
ff_memp = ff_mem / nff
print(f"\npart 1: nginx-rtmp, {secs:.0f} s")
print(f"{'client':<34}{'CPU ms/stream-s':>16}{'KB/publisher':>14}")
print(f"{'pushprobe load ('+str(npp)+' publishers)':<34}{pp_cpu:>16.3f}{pp_mem:>14.1f}   ({acc} accepted, max lag {rep['max_lag_ms']:.0f} ms)")
print(f"{'ffmpeg -re -c copy ('+str(nff)+' processes)':<34}{ff_cpu:>16.3f}{ff_memp:>14.1f}")
print(f"ratio ffmpeg/pushprobe: CPU {ff_cpu/pp_cpu:.0f}x, memory {ff_memp/pp_mem:.0f}x")
su_, ss_, sm = map(float, open(f"{work}/pps.time").read().split()[-3:])
srep = json.load(open(f"{work}/pps.json"))
st_cpu = (su_ + ss_) * 1000 / srep["stream_seconds"]
print(f"{'pushprobe load --stamp':<34}{st_cpu:>16.3f}{sm / npp:>14.1f}   ({srep['outcomes'].get('accepted', 0)} accepted, max lag {srep['max_lag_ms']:.0f} ms)")
print(f"stamped/unstamped CPU: {st_cpu/pp_cpu:.2f}x (budget 1.5x)")
print("baselines (DESIGN.md): srs-bench 0.62 ms, 53 KB; target <= 0.15 ms, <= 8 KB")
PY

# ---- part 2: 10,000 publishers against the local ingest ----
if [ "$SCALE" -gt 0 ]; then
  IP=$(free_port)
  PUSHPROBE_KEY=bench "$B" serve --listen 127.0.0.1:"$IP" --idle-timeout 30s 2> "$WORK/serve.log" & SP=$!
  PIDS+=($SP)
  wait_port "$IP"
  /usr/bin/time -f "%U %S %M" -o "$WORK/scale.time" env PUSHPROBE_KEY=bench \
    "$B" load --domain 127.0.0.1 --port "$IP" --publishers "$SCALE" --rate 1000 --duration 60s \
    --fixture "$PWD/fixtures/low-240p.flv" --progress none --json-out "$WORK/scale.json" --hgrm "$WORK/hgrm" > "$WORK/scale.txt" || true
  read -r SU SS < <(awk '{print $14, $15}' /proc/$SP/stat)
  TCK=$(getconf CLK_TCK)
  python3 - "$WORK" "$SCALE" "$SU" "$SS" "$TCK" <<'PY'
import json, sys
work, n, su, ss, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
u, s, m = map(float, open(f"{work}/scale.time").read().split()[-3:])
rep = json.load(open(f"{work}/scale.json"))
ss_ = rep["stream_seconds"]
pub = rep["phases_ms"]["publish"]
print(f"\npart 2: {n} publishers of low-240p for 60 s at 1000/s against pushprobe serve")
print(f"accepted {rep['outcomes'].get('accepted', 0)} of {n}, max lag {rep['max_lag_ms']:.0f} ms")
print(f"time to Publish.Start: p50 {pub['p50']:.1f} ms, p99 {pub['p99']:.1f} ms, max {pub['max']:.1f} ms")
print(f"client: {(u+s)*1000/ss_:.3f} CPU ms/stream-s, peak RSS {m/1024:.1f} MB = {m/n:.2f} KB/publisher all told")
print(f"ingest: {(su+ss)/tck*1000/ss_:.3f} CPU ms/stream-s")
PY
  sed -n '/latency, ms/,/lag behind/p' "$WORK/scale.txt"
fi

# ---- part 3 (issue 14): HEVC vs H.264, load cost per stream-second ----
# Same 640x360 content at ~500 kbit/s; 200 publishers of each fixture in
# turn against nginx-rtmp (it takes Publish.Start for both). Set CODEC_N=0
# to skip, CODEC_B to time another pushprobe binary.
CODEC_N=${CODEC_N:-200}
CB=${CODEC_B:-$B}
if [ "$CODEC_N" -gt 0 ]; then
  for fx in sd-360p hevc-360p; do
    /usr/bin/time -f "%U %S %M" -o "$WORK/codec-$fx.time" \
      "$CB" load --url-template "rtmp://127.0.0.1:$NP/live/$fx{i}" --publishers "$CODEC_N" --rate 200 \
      --duration "${SECS}s" --fixture "$PWD/fixtures/$fx.flv" --progress none --json-out "$WORK/codec-$fx.json" > /dev/null || true
  done
  python3 - "$WORK" "$CODEC_N" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
print(f"\npart 3: {n} publishers, H.264 vs HEVC (Enhanced RTMP), nginx-rtmp")
print(f"{'fixture':<12}{'CPU ms/stream-s':>16}{'KB/publisher':>14}{'kbit/s':>8}  accepted")
cost = {}
for fx in ["sd-360p", "hevc-360p"]:
    u, s, m = map(float, open(f"{work}/codec-{fx}.time").read().split()[-3:])
    rep = json.load(open(f"{work}/codec-{fx}.json"))
    ss = rep["stream_seconds"]
    cost[fx] = (u + s) * 1000 / ss
    print(f"{fx:<12}{cost[fx]:>16.3f}{m / n:>14.1f}{rep.get('fixture_kbps', 0):>8}  {rep['outcomes'].get('accepted', 0)} (codec_unsupported {rep['outcomes'].get('codec_unsupported', 0)})")
print(f"ratio HEVC/H.264: {cost['hevc-360p'] / cost['sd-360p']:.2f}")
PY
fi
fi

# ---- part 4: SRT, pushprobe vs ffmpeg, then SRT_N publishers ----
if [ "${SRT_SINK:-c}" = tokio ]; then
  SINK_BIN=$TARGET/release/examples/srt_sink
else
  SINK_BIN=$WORK/srt_sink
  gcc -O2 -o "$SINK_BIN" benches/srt_sink.c $(pkg-config --cflags --libs srt)
fi
udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
srt_sink() { # $1: name, $2: TSBPD (1 or 0); starts a sink, sets SINK_PORT and SINK_PID
  local p; p=$(udp_port)
  SRT_SINK_TSBPD=$2 "$SINK_BIN" 127.0.0.1:"$p" > "$WORK/$1.sink" & SINK_PID=$!
  PIDS+=($SINK_PID)
  for _ in $(seq 100); do grep -q listening "$WORK/$1.sink" 2>/dev/null && break; sleep 0.05; done
  SINK_PORT=$p
}
sink_totals() { # $1: name; stops the sink (it prints its totals) and shows them
  local cpu; cpu=$(awk -v t="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / t}' /proc/"$SINK_PID"/stat 2>/dev/null || echo "?")
  echo "sink CPU: $cpu s (user + sys)"
  kill -INT "$SINK_PID" 2>/dev/null || true
  for _ in $(seq 100); do grep -q "srt sink:" "$WORK/$1.sink" && break; sleep 0.05; done
  grep "srt sink:" "$WORK/$1.sink" || echo "srt sink: no totals"
}
# Part 4 sinks with libsrt's timestamp-based delivery (TSBPD: a play-out
# thread per caller, late packets dropped). Part 4b sinks without it by
# default (SRT_SINK_TSBPD_4B=1 to keep it): at 2,000 callers those threads
# cost the sink more than the two cores it shares with the client have.
srt_sink srt1 1
N_PP=200
/usr/bin/time -f "%U %S %M" -o "$WORK/spp.time" \
  "$B" load --url-template "srt://127.0.0.1:$SINK_PORT?streamid=#!::r=live/pp{i}" --publishers $N_PP --rate 200 \
  --duration "${SECS}s" --fixture "$FIX" --progress none --json-out "$WORK/spp.json" > "$WORK/spp.txt"
N_FF=20
FFP=()
for i in $(seq 1 $N_FF); do
  /usr/bin/time -f "%U %S %M" -o "$WORK/sff$i.time" \
    ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i "$FIX" -c copy -t "$SECS" \
    -f mpegts "srt://127.0.0.1:$SINK_PORT?streamid=#!::r=live/ff$i&pkt_size=1316" &
  FFP+=($!)
done
wait "${FFP[@]}" 2>/dev/null || true
python3 - "$WORK" "$N_PP" "$N_FF" "$SECS" "${SRT_SINK:-libsrt}" <<'PY'
import json, os, sys, glob
work, npp, nff, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
u, s, m = map(float, open(f"{work}/spp.time").read().split()[-3:])
rep = json.load(open(f"{work}/spp.json"))
pp_cpu = (u + s) * 1000 / rep["stream_seconds"]
pp_mem = m / npp
ff_cpu_s = ff_mem = 0.0
for f in glob.glob(f"{work}/sff*.time"):
    fu, fs, fm = map(float, open(f).read().split()[-3:])
    ff_cpu_s += fu + fs
    ff_mem += fm
ff_cpu = ff_cpu_s * 1000 / (nff * secs)
ff_memp = ff_mem / nff
srt = rep.get("srt", {})
print(f"\npart 4: SRT into srt_sink ({sys.argv[5]}), {secs:.0f} s")
print(f"{'client':<40}{'CPU ms/stream-s':>16}{'KB/publisher':>14}")
print(f"{'pushprobe load ('+str(npp)+' SRT publishers)':<40}{pp_cpu:>16.3f}{pp_mem:>14.1f}   ({rep['outcomes'].get('accepted', 0)} accepted, max lag {rep['max_lag_ms']:.0f} ms, {srt.get('packets_retransmitted', 0)} retransmitted, {srt.get('packets_dropped', 0)} dropped)")
print(f"{'ffmpeg -re -c copy -f mpegts ('+str(nff)+' proc.)':<40}{ff_cpu:>16.3f}{ff_memp:>14.1f}")
print(f"ratio ffmpeg/pushprobe: CPU {ff_cpu/pp_cpu:.1f}x, memory {ff_memp/pp_mem:.1f}x")
PY
sink_totals srt1
if [ "$SRT_N" -gt 0 ]; then
  SINK_TSBPD_4B=${SRT_SINK_TSBPD_4B:-0}
  srt_sink srt2 "$SINK_TSBPD_4B"
  /usr/bin/time -f "%U %S %M" -o "$WORK/sscale.time" \
    "$B" load --url-template "srt://127.0.0.1:$SINK_PORT?streamid=#!::r=live/s{i}" --publishers "$SRT_N" --rate 500 \
    --duration 60s --fixture "$PWD/fixtures/low-240p.flv" --progress none --json-out "$WORK/sscale.json" > "$WORK/sscale.txt" || true
  python3 - "$WORK" "$SRT_N" "$SINK_TSBPD_4B" <<'PY'
import json, sys
work, n, tsbpd = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
u, s, m = map(float, open(f"{work}/sscale.time").read().split()[-3:])
rep = json.load(open(f"{work}/sscale.json"))
pub = rep["phases_ms"].get("publish", {})
srt = rep.get("srt", {})
print(f"\npart 4b: {n} SRT publishers of low-240p for 60 s at 500/s into srt_sink ({'with' if tsbpd else 'without'} TSBPD)")
print(f"accepted {rep['outcomes'].get('accepted', 0)} of {n}, max lag {rep['max_lag_ms']:.0f} ms, lag p99 {rep['lag_ms']['p99']:.0f} ms")
if pub:
    print(f"first packet acknowledged: p50 {pub['p50']:.1f} ms, p99 {pub['p99']:.1f} ms")
print(f"srt: {srt.get('packets_sent', 0)} packets sent, {srt.get('packets_retransmitted', 0)} retransmitted, {srt.get('packets_dropped', 0)} dropped, {srt.get('packets_lost', 0)} reported lost")
print(f"client: {(u+s)*1000/max(rep['stream_seconds'],1e-9):.3f} CPU ms/stream-s ({u+s:.1f} CPU s over {rep['stream_seconds']:.0f} stream-s), peak RSS {m/1024:.1f} MB = {m/n:.2f} KB/publisher all told")
PY
  sink_totals srt2
fi
