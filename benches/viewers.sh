#!/usr/bin/env bash
# Viewers at scale (issue 13), all on loopback, in one run: VIEWERS viewers of
# VIEWER_STREAMS streams of low-240p from one viewer-only `pushprobe load`
# process, the streams pushed (with latency stamps) by another `pushprobe load
# --stamp` process and relayed by nginx-rtmp in a third: viewers started,
# push-to-play latency (every viewer within 1 s of real time?), stalls, client
# CPU per viewer-second vs the publisher's CPU per stream-second, memory per
# viewer. With SRS_BENCH=path/to/sb_rtmp_load (srs-bench's C++ player, built
# from its history), the same viewers from it side by side.
#
# Usage: benches/viewers.sh [VIEWERS] [VIEWER_STREAMS] [VIEWER_SECONDS]
#   defaults: 10000 viewers of 100 streams for 30 s; VIEWER_RATE sets the ramp;
#   RELAY=serve relays through `pushprobe serve` instead of nginx-rtmp;
#   with it, PLAY=flv has the viewers play HTTP-FLV from serve's --http.
# Needs: nginx-light, libnginx-mod-rtmp, ffmpeg, GNU time (apt: time), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${1:-10000}
VSTREAMS=${2:-100}
VSECS=${3:-30}
cargo build --release --quiet
B=$PWD/target/release/pushprobe
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

# ---- nginx-rtmp relays the streams ----
NP=$(free_port)
cat > "$WORK/n.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; pid $WORK/n.pid; error_log $WORK/err.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
rtmp { server { listen 127.0.0.1:$NP; application live { live on; record off; } } }
EOF
if [ "${RELAY:-nginx}" = serve ]; then
  # RELAY=serve: pushprobe's own ingest plays the streams out instead.
  HP=$(free_port)
  "$B" serve --listen 127.0.0.1:"$NP" --http 127.0.0.1:"$HP" --idle-timeout 60s 2> "$WORK/serve.log" & PIDS+=($!)
  RELAY_PID=$!
else
  nginx -c "$WORK/n.conf" -p "$WORK" & PIDS+=($!)
  RELAY_PID=$!
fi
wait_port "$NP"

# ---- viewers of stamped streams through nginx-rtmp ----
if [ "$VIEWERS" -gt 0 ]; then
  PER=$(( VIEWERS / VSTREAMS ))
  PLAY_TEMPLATE="rtmp://127.0.0.1:$NP/live/{stream}"
  if [ "${PLAY:-rtmp}" = flv ]; then
    [ "${RELAY:-nginx}" = serve ] || { echo "PLAY=flv needs RELAY=serve" >&2; exit 2; }
    PLAY_TEMPLATE="http://127.0.0.1:$HP/live/{stream}.flv"
  fi
  RATE=${VIEWER_RATE:-1000}
  RAMP=$(( VIEWERS / RATE + 1 ))
  # Publishers outlast the viewers' ramp, their first keyframe and their time.
  PSECS=$(( RAMP + VSECS + 15 ))
  # ... and srs-bench's players after them, when asked.
  if [ -n "${SRS_BENCH:-}" ]; then PSECS=$(( PSECS + RAMP + VSECS )); fi
  LOW=$PWD/fixtures/low-240p.flv
  /usr/bin/time -f "%U %S %M" -o "$WORK/vpub.time" \
    "$B" load --url-template "rtmp://127.0.0.1:$NP/live/vw{i}" --publishers "$VSTREAMS" --rate "${PUB_RATE:-0}" \
    --stamp --duration "${PSECS}s" --fixture "$LOW" --progress none --json-out "$WORK/vpub.json" \
    > "$WORK/vpub.txt" 2>&1 & VPUB=$!
  PIDS+=($VPUB)
  sleep 3  # the publishers' Publish.Start (nginx relays from then on)
  /usr/bin/time -f "%U %S %M" -o "$WORK/view.time" \
    "$B" load --stream-template "vw{i}" --publishers "$VSTREAMS" --viewers "$PER" --rate $RATE \
    --play-template "$PLAY_TEMPLATE" --duration "${VSECS}s" --timeout 20s \
    --progress none --json-out "$WORK/view.json" --hgrm "$WORK/vhgrm" > "$WORK/view.txt" 2>&1 || true
  if [ -n "${SRS_BENCH:-}" ] && [ -x "$SRS_BENCH" ]; then
    # srs-bench's RTMP player (sb_rtmp_load): as many players, started at
    # random within the same ramp (-s), killed after the ramp and our time.
    # It plays one URL (no per-stream template): all on stream vw0, the same
    # bitrate per player. It measures no latency.
    /usr/bin/time -f "%U %S %M" -o "$WORK/sb.time" \
      timeout -s KILL $(( RAMP + VSECS )) "$SRS_BENCH" -c "$VIEWERS" -s "$RAMP" \
      -r "rtmp://127.0.0.1:$NP/live/vw0" > "$WORK/sb.txt" 2>&1 || true
  fi
  wait "$VPUB" || true
  # The relay's CPU (user + system, clock ticks) over the whole run.
  RELAY_CPU=$(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/"$RELAY_PID"/stat 2>/dev/null || echo 0)
  python3 - "$WORK" "$VIEWERS" "$VSTREAMS" "$VSECS" "${SRS_BENCH:-}" "$RELAY_CPU" "$SECONDS" <<'PY'
import json, os, sys
work, n, streams, secs, sb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
relay_cpu, wall = float(sys.argv[6]), float(sys.argv[7])
def t(name):
    return map(float, open(f"{work}/{name}").read().split()[-3:])
pu, ps, pm = t("vpub.time")
pub = json.load(open(f"{work}/vpub.json"))
pub_cpu = (pu + ps) * 1000 / pub["stream_seconds"]
vu, vs, vm = t("view.time")
rep = json.load(open(f"{work}/view.json"))
v = rep["viewers"]
view_cpu = (vu + vs) * 1000 / v["play_seconds"] if v["play_seconds"] else float("nan")
lat, ff, f = v["latency_ms"], v["first_frame_ms"], v["frames"]
relay = "pushprobe serve" if os.environ.get("RELAY") == "serve" else "nginx-rtmp"
worst = v["viewer_max_latency_ms"]
print(f"\nviewers: {n} viewers of {streams} low-240p streams ({n // streams} each) for {secs:.0f} s, ramped at {os.environ.get('VIEWER_RATE', '1000')}/s, via {relay}, playing {os.environ.get('PLAY', 'rtmp')}")
print(f"viewers: {v['started']} started of {v['planned']}, {v['kept_up']} kept up, {v['late']} behind real time, {v['failed']} failed {v['failures']}")
print(f"push-to-play latency of live frames ({lat['count']} frames, method {v['latency_method']}): p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms")
print(f"catch-up at join: {f['catchup']} frames from the relay's GOP cache (pushed before their viewer asked), not in the latency")
print(f"worst live frame per viewer ({worst['count']} viewers): p50 {worst['p50']:.1f} ms, p99 {worst['p99']:.1f} ms, max {worst['max']:.1f} ms"
      f" -> every viewer within 1 s of real time: {'yes' if worst['count'] == n and worst['max'] <= 1000 and f['stalls'] == 0 and v['started'] == n else 'NO'}")
print(f"stalls {f['stalls']}, lost {f['lost']}, duplicated {f['duplicated']}, reordered {f['reordered']}, first frame p50 {ff['p50']:.0f} ms p99 {ff['p99']:.0f} ms")
print(f"{'client':<44}{'CPU ms/s':>10}{'KB each':>10}")
print(f"{'pushprobe load, '+str(streams)+' stamping publishers (per stream-s)':<44}{pub_cpu:>10.3f}{pm / streams:>10.1f}")
print(f"{'pushprobe load, '+str(n)+' viewers (per viewer-s)':<44}{view_cpu:>10.3f}{vm / n:>10.1f}")
print(f"viewer/publisher CPU: {view_cpu / pub_cpu:.2f}x (target <= 2x); memory per viewer {vm / n:.1f} KB all told (target < 16 KB)")
busy = vu + vs + pu + ps + relay_cpu
print(f"CPU used: viewers {vu + vs:.1f} s, publishers {pu + ps:.1f} s, {relay} {relay_cpu:.1f} s: {busy:.0f} s of the {os.cpu_count()} cores' {os.cpu_count() * wall:.0f} s in the script's {wall:.0f} s")
if sb and os.path.exists(f"{work}/sb.time"):
    su, ss, sm = t("sb.time")
    # Same ramp and time as ours; viewer-seconds approximated by clients x time.
    print(f"{'srs-bench sb_rtmp_load, '+str(n)+' players (per player-s)':<44}{(su + ss) * 1000 / (n * secs):>10.3f}{sm / n:>10.1f}")
PY
  sed -n '/^viewers (/,$p' "$WORK/view.txt"
fi
