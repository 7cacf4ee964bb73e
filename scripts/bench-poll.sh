#!/usr/bin/env bash
# Poller benchmark (issue #4): CHECKS polled checks on a 60 s interval
# against Debian's graphite-web (Django runserver, as in the tests) over
# 100 whisper files, for SECONDS seconds. Reports the render requests made
# against the number the schedule calls for, runs skipped (overlap or a
# schedule fallen behind), Graphite errors, and how late runs started.
# SERVER is `runserver` (Django's, single process, as in the tests) or
# `gunicorn` (Debian's gunicorn, WORKERS processes: how graphite-web is
# deployed in production).
#   scripts/bench-poll.sh [CHECKS] [SECONDS] [CONCURRENCY] [SERVER] [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKS=${1:-10000}; SECS=${2:-300}; CONC=${3:-8}; SERVER=${4:-gunicorn}; WORKERS=${5:-4}
W=/tmp/carbonwatch-bench-poll; rm -rf "$W"; mkdir -p "$W/storage/whisper" "$W/log"
cargo build --release --quiet
BIN=$PWD/target/release/carbonwatch

/usr/bin/python3 - "$W" <<'EOF'
import os, sys, time, whisper
root = sys.argv[1] + "/storage/whisper/bench/poll"
os.makedirs(root, exist_ok=True)
now = int(time.time())
for i in range(100):
    p = f"{root}/m{i}.wsp"
    whisper.create(p, [(10, 8640)])
    whisper.update_many(p, [(now - s, float(i)) for s in range(0, 1800, 10)])
EOF
cat > "$W/cw_graphite_settings.py" <<EOF
SECRET_KEY = 'carbonwatch-bench'
STORAGE_DIR = '$W/storage'
WHISPER_DIR = '$W/storage/whisper'
LOG_DIR = '$W/log'
INDEX_FILE = '$W/index'
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '$W/graphite.db'}}
EOF
export PYTHONPATH="$W" GRAPHITE_SETTINGS_MODULE=cw_graphite_settings DJANGO_SETTINGS_MODULE=graphite.settings
/usr/bin/python3 -m django migrate --run-syncdb >/dev/null 2>&1
if [ "$SERVER" = gunicorn ]; then
    command -v gunicorn >/dev/null || { echo "needs Debian's gunicorn: apt-get install gunicorn"; exit 1; }
    gunicorn --workers "$WORKERS" --bind 127.0.0.1:38081 graphite.wsgi:application >"$W/graphite.log" 2>&1 & GW=$!
else
    /usr/bin/python3 -m django runserver 127.0.0.1:38081 --noreload >"$W/graphite.log" 2>&1 & GW=$!
fi
trap 'kill $GW $CW 2>/dev/null || true' EXIT

{
cat <<EOF
[listen]
plaintext_tcp = "127.0.0.1:32004"
plaintext_udp = ""
pickle_tcp = ""
[admin]
listen = "127.0.0.1:32081"
[stats]
enabled = false
[alerting]
store = "$W/cw.db"
[graphite]
url = "http://127.0.0.1:38081"
max_concurrent_requests = $CONC
[[cluster]]
name = "none"
type = "blackhole"
[[route]]
match = "*"
to = ["none"]
EOF
for i in $(seq 0 $((CHECKS - 1))); do
    printf '[[check]]\nname = "poll %d"\ntarget = "bench.poll.m%d"\nlive = false\nwarn = 1000\nerror = 2000\n' "$i" $((i % 100))
done
} > "$W/poll.toml"

for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:38081/render/?target=bench.poll.m0&format=json" && break; sleep 0.2; done
$BIN run --config "$W/poll.toml" 2>"$W/cw.log" & CW=$!
for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:32081/metrics && break; sleep 0.1; done
metric() { curl -s http://127.0.0.1:32081/metrics | awk -v m="$1" '$1 == m {print $2}'; }
t0=$(date +%s.%N)
sleep "$SECS"
t1=$(date +%s.%N)
curl -s http://127.0.0.1:32081/metrics | grep -E '^carbonwatch_poll' > "$W/metrics.txt"
runs=$(metric carbonwatch_poll_runs_total); skipped=$(metric carbonwatch_poll_skipped_total)
errors=$(metric carbonwatch_poll_errors_total); maxlate=$(metric carbonwatch_poll_start_lateness_max_ms)
# The server and its workers: their CPU time so far.
gw_cpu=$(for p in $GW $(pgrep -P $GW); do awk '{print ($14 + $15)}' /proc/$p/stat; done | awk '{s += $1} END {print s / 100}'); cw_cpu=$(awk '{print ($14 + $15) / 100}' /proc/$CW/stat)
cw_rss=$(awk '/VmHWM/ {print $2}' /proc/$CW/status)
elapsed=$(echo "$t1 - $t0" | bc)
echo "checks=$CHECKS interval=60s elapsed=${elapsed}s concurrency=$CONC graphite-web=$SERVER workers=$WORKERS"
echo "runs=$runs expected=$(echo "$CHECKS * $elapsed / 60" | bc) runs_per_sec=$(echo "scale=1; $runs / $elapsed" | bc) skipped=$skipped graphite_errors=$errors"
echo "runs by start lateness (ms): $(for b in 10 100 1000 10000 60000 +Inf; do printf '<%s:%s ' "$b" "$(metric "carbonwatch_poll_start_lateness_ms{below=\"$b\"}")"; done)max=$maxlate"
echo "cpu_s: carbonwatch=$cw_cpu graphite-web=$gw_cpu  carbonwatch_peak_rss=${cw_rss}KiB"
