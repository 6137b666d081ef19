#!/bin/bash
# Play-out cost of `pushprobe serve`: one publisher (pushprobe push), then N
# RTMP play viewers (examples/playout_viewers, no ffmpeg) for S seconds.
# Prints the ingest's CPU (ticks of 10 ms from /proc/PID/stat) and RSS with
# the publisher alone and with the viewers, /streams' viewer counts, what
# the viewers received, and the publisher's outcome and lag.
#   cargo build --example playout_viewers
#   benches/playout.sh target/debug/pushprobe 1000 50
set -u
B=$(realpath "$1"); N=$2; S=$3
VIEWERS=$(realpath "$(dirname "$0")/../target/debug/examples/playout_viewers")
D=$(mktemp -d); cd "$D"
ulimit -n 20000
$B serve --listen 127.0.0.1:0 --http 127.0.0.1:0 > m.out 2> m.err &
SP=$!
sleep 1.5
RP=$(grep -o 'rtmp://127.0.0.1:[0-9]*' m.err | head -1 | cut -d: -f3); HP=$(grep -o 'HTTP on http://127.0.0.1:[0-9]*' m.err | cut -d: -f3)
$B push rtmp://127.0.0.1:$RP/live/m --duration $((S+40))s --json > mpush.json 2>&1 &
PP=$!
sleep 5
cpu() { awk '{print $14+$15}' /proc/$SP/stat; }
rss() { grep VmRSS /proc/$SP/status | awk '{print $2}'; }
c0=$(cpu); r0=$(rss); t0=$(date +%s.%N)
sleep 10
c1=$(cpu); t1=$(date +%s.%N)
echo "baseline (publisher only): cpu $(( c1 - c0 )) ticks in $(echo "$t1 - $t0" | bc) s, rss ${r0} kB"
"$VIEWERS" 127.0.0.1:$RP live/m $N $S > mview.out 2>&1 &
VP=$!
sleep 20
curl -s http://127.0.0.1:$HP/streams | python3 -c "import json,sys; print('streams viewers', json.load(sys.stdin)[0]['viewers'])"
c2=$(cpu); t2=$(date +%s.%N); r2=$(rss)
sleep 15
c3=$(cpu); t3=$(date +%s.%N); r3=$(rss)
curl -s http://127.0.0.1:$HP/streams | python3 -c "import json,sys; print('streams viewers', json.load(sys.stdin)[0]['viewers'])"
echo "with $N RTMP viewers: cpu $(( c3 - c2 )) ticks in $(echo "$t3 - $t2" | bc) s, rss ${r3} kB (was ${r0} kB before viewers)"
wait $VP
cat mview.out
wait $PP
python3 -c "import json; d=json.load(open('mpush.json')); print('publisher', d['outcome'], 'max_lag_ms', d['max_lag_ms'], 'streamed', d['streamed_seconds'])"
kill $SP
