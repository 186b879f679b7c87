#!/usr/bin/env bash
# bench.sh runs the comparisons of docs/benchmarks.md on this machine and
# writes their table (markdown) to $BENCH_OUT. Each comparison is a pair run
# in the same round: the target, then its ceiling (a bare net/http 204
# handler, or a bare posting loop), BENCH_ROUNDS rounds, medians and ranges.
# Load comes from wrk with unique bodies (tools/bench/unique.lua); cmd/loadgen
# is run beside it in the first round to check it against wrk.
#
#   make bench                               # 3 rounds of 10 s, 6–10 minutes
#   BENCH_QUICK=1 make bench                 # 1 round of 4 s, ~3 minutes
#   BENCH_ONLY="split aio" make bench        # some scenarios only
#
# Scenarios: split (cmd/ingest + nats-server of go.mod's version, then a
# bare handler publishing to the same server: plain JetStream, alone and
# with a group commit), split-old
# (the same with $NATS_SERVER_OLD, e.g. Debian's 2.9.10, when it is set or
# found on PATH and differs), aio (the all-in-one delivering to a fake
# Slack meanwhile), steady (the all-in-one at a steady 500 requests/s, then
# plain JetStream in one process at the same rate: loadgen -publish
# embedded -deliver),
# idle (the all-in-one idle with $BENCH_IDLE_CHANNELS channels), storm (the
# all-in-one at the default pace taking 10,000 events at 1,000/s into one
# channel: seconds from the storm's end to the last delivered, and digests),
# drain (cmd/dispatcher, a black box, draining 20,000 preloaded events over
# 1,000 channels, beside plain JetStream draining as many and a bare posting
# loop, each in another process), dispatch
# (BenchmarkDelivery: the dispatcher, the JetStream consume loop (plain
# JetStream), the bare posting loop; and BenchmarkDeliverySlack200ms).
#
# Settings: BENCH_ROUNDS (3), BENCH_SECONDS (10), BENCH_CONNS (64),
# BENCH_PORT (15400; uses the next 50 ports), BENCH_BIN (a directory of
# prebuilt ingest, installer, dispatcher, jackalope: compare another build),
# NATS_SERVER (default: built from go.mod), NATS_SERVER_OLD, BENCH_OUT
# (bench-results.md), BENCH_IDLE_CHANNELS (1000), BENCH_DRAIN_POSTS (64).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
quick=${BENCH_QUICK:-}
rounds=${BENCH_ROUNDS:-$([ -n "$quick" ] && echo 1 || echo 3)}
secs=${BENCH_SECONDS:-$([ -n "$quick" ] && echo 4 || echo 10)}
conns=${BENCH_CONNS:-64}
port=${BENCH_PORT:-15400}
only=${BENCH_ONLY:-split split-old aio steady storm drain idle dispatch}
idle_channels=${BENCH_IDLE_CHANNELS:-$([ -n "$quick" ] && echo 200 || echo 1000)}
out=${BENCH_OUT:-$root/bench-results.md}
channels=20

work=$(mktemp -d /tmp/jackalope-bench.XXXXXX)
# Every process start runs is noted in $work/pids (start runs in a
# subshell), so that cleanup can stop the ones a failure left behind.
cleanup() {
	if [ -f "$work/pids" ]; then
		while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/pids"
	fi
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }
want() { [[ " $only " == *" $1 "* ]]; }

command -v wrk >/dev/null || { echo "bench: wrk is required (apt-get install wrk)" >&2; exit 1; }

# --- binaries ---------------------------------------------------------------
bin=${BENCH_BIN:-$work/bin}
if [ -z "${BENCH_BIN:-}" ]; then
	log "building cmd/ingest, cmd/installer, cmd/dispatcher, cmd/jackalope"
	(cd "$root" && go build -o "$bin/" ./cmd/ingest ./cmd/installer ./cmd/dispatcher ./cmd/jackalope)
fi
# loadgen (the bare handler, the fake Slack, the steady load) always comes
# from this tree, also when BENCH_BIN measures another build.
(cd "$root" && go build -o "$work/tools/" ./cmd/loadgen)
loadgen=$work/tools/loadgen
nats=${NATS_SERVER:-}
if [ -z "$nats" ]; then
	log "building nats-server $(cd "$root" && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2) from go.mod"
	(cd "$root" && go build -o "$work/nats-server" github.com/nats-io/nats-server/v2)
	nats=$work/nats-server
fi
nats_version() { "$1" --version 2>/dev/null | awk '{print $NF}'; }
nats_old=${NATS_SERVER_OLD:-$(command -v nats-server || true)}
if [ -n "$nats_old" ] && [ "$(nats_version "$nats_old")" = "$(nats_version "$nats")" ]; then nats_old=; fi
# Jackalope provisions streams only on 2.10 or later (bus.Provision says
# so); an older server is named in the table but not run.
nats_old_note=
if [ -n "$nats_old" ]; then
	v=$(nats_version "$nats_old"); v=${v#v}
	if [ "${v%%.*}" -lt 2 ] || { [ "${v%%.*}" = 2 ] && [ "$(echo "$v" | cut -d. -f2)" -lt 10 ]; }; then
		nats_old_note="nats-server v$v ($nats_old) not run: Jackalope provisions its streams only on 2.10 or later"
		log "$nats_old_note"
		nats_old=
	fi
fi

export SECRET_KEY=bench-secret-key-0123456789-abcdefghij
export SLACK_WEBHOOK_HOSTS=127.0.0.1
export GOMAXPROCS=${GOMAXPROCS:-$(nproc)}
ingest_port=$port bare_port=$((port + 1)) slack_port=$((port + 2)) nats_port=$((port + 22)) metrics_port=$((port + 9))
drain_nats_port=$((port + 23))

# --- helpers ----------------------------------------------------------------
start() { # start NAME CMD...: runs CMD in the background, logging to $work/NAME.log; prints its pid
	local name=$1; shift
	"$@" >"$work/$name.log" 2>&1 &
	echo $! >>"$work/pids"
	echo $!
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
port_free() {
	if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		echo "bench: port $1 is taken; set BENCH_PORT to another base" >&2; return 1
	fi
}
wait_port() {
	for _ in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench: nothing listens on port $1" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# delivered_count PORT: the events a dispatcher serving metrics on PORT delivered
delivered_count() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^jackalope_dispatch_deliveries_total\{outcome="delivered"\}/ {printf "%d", $2}'; }
tck=$(getconf CLK_TCK)
# us_per TICKS RATE SECS: µs of CPU per item, for TICKS of CPU over SECS at RATE items a second
us_per() { awk -v t="$1" -v n="$2" -v s="$3" -v h="$tck" 'BEGIN{printf "%.1f", t/h*1e6/(n*s)}'; }

# wrk_run URL TOKENS: prints "rps p99_ms non2xx"
wrk_run() {
	local o
	o=$(wrk -c "$conns" -t 2 -d "${secs}s" --latency -s "$here/unique.lua" "$1" -- "$2" "$here/checkin.json" "r$RANDOM$RANDOM")
	echo "$o" >>"$work/wrk.out"
	echo "$o" | awk '
		/Requests\/sec/ {rps=$2}
		/^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v}
		/Non-2xx/ {bad=$NF}
		/Socket errors/ {bad=bad "+sock"}
		END {printf "%.0f %.2f %s\n", rps, p99, (bad==""?0:bad)}'
}
# loadgen_run URL TOKENS [extra flags]: prints "rps p99_ms"
loadgen_run() {
	local url=$1 tokens=$2; shift 2
	local o
	o=$("$loadgen" -url "$url" -tokens "$tokens" -c "$conns" -d "${secs}s" "$@")
	echo "$o" >>"$work/loadgen.out"
	echo "$o" | awk '
		/^requests/ {r=$4; sub(/\/s/,"",r)}
		/^latency/ {v=$7; if (v ~ /µs$/) {sub(/µs/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p=v}
		END {printf "%.0f %.2f\n", r, p}'
}

# Results: one line per measurement, "KEY VALUE", in $work/results.
rec() { echo "$1 $2" >>"$work/results"; }

# bare ceiling: a bare 204 handler measured by wrk (and loadgen), with the
# same tokens file.
bare_round() { # bare_round TAG TOKENS
	local b
	b=$(start bare "$loadgen" -serve-bare "127.0.0.1:$bare_port")
	wait_port "$bare_port"
	local t0 r
	t0=$(cpu_ticks "$b")
	read -r rps p99 bad < <(wrk_run "http://127.0.0.1:$bare_port" "$2")
	rec "$1.bare.rps" "$rps"; rec "$1.bare.p99" "$p99"
	r=$(( $(cpu_ticks "$b") - t0 ))
	rec "$1.bare.cpu_us" "$(us_per "$r" "$rps" "$secs")"
	if [ "$1" = split ] && [ "$round" = 1 ]; then
		read -r lrps lp99 < <(loadgen_run "http://127.0.0.1:$bare_port" "$2")
		rec "loadgen.bare.rps" "$lrps"
	fi
	stop "$b"
}

make_channels() { # make_channels N TOKENS_FILE INIT CMD...: INIT is --init for a new installer registry, or -
	local n=$1 file=$2 init=$3; shift 3
	: >"$file"
	for i in $(seq 0 $((n - 1))); do
		local flags=()
		if [ "$i" = 0 ] && [ "$init" != - ]; then flags=("$init"); fi
		"$@" channels add "${flags[@]}" --channel "bench-$i" --webhook-url "http://127.0.0.1:$slack_port/services/T0/B0/x$i" 2>>"$work/channels.log" | awk '/Jamf URL:/ {print $3}' >>"$file"
	done
	[ "$(wc -l <"$file")" -ge "$n" ] || { echo "bench: made $(wc -l <"$file") of $n channels" >&2; return 1; }
}

# --- split: cmd/ingest with nats-server in its own process --------------------
split_round() { # split_round TAG NATS_BINARY
	local tag=$1 server=$2 dir=$work/$1
	rm -rf "$dir"; mkdir -p "$dir"
	local n
	n=$(start "$tag-nats" "$server" -a 127.0.0.1 -p "$nats_port" -js -sd "$dir/nats")
	wait_port "$nats_port"
	make_channels "$channels" "$dir/urls" --init env NATS_URL="nats://127.0.0.1:$nats_port" DATA_DIR="$dir/installer" "$bin/installer"
	local i
	i=$(start "$tag-ingest" env NATS_URL="nats://127.0.0.1:$nats_port" LISTEN_ADDR="127.0.0.1:$ingest_port" METRICS_ADDR="127.0.0.1:$metrics_port" "$bin/ingest")
	wait_port "$ingest_port"
	local ti tn
	ti=$(cpu_ticks "$i"); tn=$(cpu_ticks "$n")
	rec "$tag.load" "$(load1)"
	read -r rps p99 bad < <(wrk_run "http://127.0.0.1:$ingest_port" "$dir/urls")
	rec "$tag.rps" "$rps"; rec "$tag.p99" "$p99"; rec "$tag.bad" "$bad"
	rec "$tag.cpu_us" "$(us_per "$(( $(cpu_ticks "$i") - ti ))" "$rps" "$secs")"
	rec "$tag.nats_cpu_us" "$(us_per "$(( $(cpu_ticks "$n") - tn ))" "$rps" "$secs")"
	if [ "$tag" = split ] && [ "$round" = 1 ]; then
		read -r lrps lp99 < <(loadgen_run "http://127.0.0.1:$ingest_port" "$dir/urls")
		rec "loadgen.split.rps" "$lrps"; rec "loadgen.split.p99" "$lp99"
	fi
	stop "$i"
	# Plain JetStream: a bare handler that only publishes each body to
	# the same nats-server and waits for its ack, loaded the same way.
	local p tp
	p=$(start "$tag-publish" "$loadgen" -serve-bare "127.0.0.1:$bare_port" -publish "nats://127.0.0.1:$nats_port")
	wait_port "$bare_port"
	tp=$(cpu_ticks "$p"); tn=$(cpu_ticks "$n")
	read -r rps p99 bad < <(wrk_run "http://127.0.0.1:$bare_port" "$dir/urls")
	rec "$tag.pub.rps" "$rps"; rec "$tag.pub.p99" "$p99"; rec "$tag.pub.bad" "$bad"
	rec "$tag.pub.cpu_us" "$(us_per "$(( $(cpu_ticks "$p") - tp ))" "$rps" "$secs")"
	rec "$tag.pub.nats_cpu_us" "$(us_per "$(( $(cpu_ticks "$n") - tn ))" "$rps" "$secs")"
	stop "$p"
	# The same with a group commit (several webhooks per stream message):
	# a design measured, not Jackalope's.
	p=$(start "$tag-group" "$loadgen" -serve-bare "127.0.0.1:$bare_port" -publish "nats://127.0.0.1:$nats_port" -group 2)
	wait_port "$bare_port"
	tp=$(cpu_ticks "$p"); tn=$(cpu_ticks "$n")
	read -r rps p99 bad < <(wrk_run "http://127.0.0.1:$bare_port" "$dir/urls")
	rec "$tag.grp.rps" "$rps"; rec "$tag.grp.p99" "$p99"
	rec "$tag.grp.cpu_us" "$(us_per "$(( $(cpu_ticks "$p") - tp ))" "$rps" "$secs")"
	rec "$tag.grp.nats_cpu_us" "$(us_per "$(( $(cpu_ticks "$n") - tn ))" "$rps" "$secs")"
	stop "$p"; stop "$n"
	bare_round "$tag" "$dir/urls"
}

# --- aio: the all-in-one, delivering to a fake Slack meanwhile ---------------
# Each channel may take 100 posts a second, so that the dispatcher posts
# every event on its own (no digests) and keeps up at the steady rate.
fast_pace=(CHANNEL_PACE=100/s CHANNEL_BURST=10)
aio_start() { # aio_start DIR CHANNELS [VAR=VALUE...]: starts the fake Slack and the all-in-one with those settings; sets aio_pid, slack_pid
	local dir=$1 n=$2; shift 2
	rm -rf "$dir"; mkdir -p "$dir"
	slack_pid=$(start slack "$loadgen" -serve-bare "127.0.0.1:$slack_port")
	aio_pid=$(start aio env DATA_DIR="$dir/data" LISTEN_ADDR="127.0.0.1:$ingest_port" "$@" "$bin/jackalope")
	wait_port "$slack_port"; wait_port "$ingest_port"
	make_channels "$n" "$dir/urls" - env DATA_DIR="$dir/data" "$bin/jackalope"
}
aio_round() {
	local dir=$work/aio
	aio_start "$dir" "$channels" "${fast_pace[@]}"
	local t0
	t0=$(cpu_ticks "$aio_pid")
	rec aio.load "$(load1)"
	read -r rps p99 bad < <(wrk_run "http://127.0.0.1:$ingest_port" "$dir/urls")
	rec aio.rps "$rps"; rec aio.p99 "$p99"; rec aio.bad "$bad"
	rec aio.cpu_us "$(us_per "$(( $(cpu_ticks "$aio_pid") - t0 ))" "$rps" "$secs")"
	rec aio.rss_peak_mib "$(( $(hwm_kib "$aio_pid") / 1024 ))"
	stop "$aio_pid"; stop "$slack_pid"
	bare_round aio "$dir/urls"
}

# --- steady: the all-in-one at 500 requests/s ---------------------------------
steady_round() {
	local dir=$work/steady
	aio_start "$dir" "$channels" "${fast_pace[@]}"
	local t0 s0
	t0=$(cpu_ticks "$aio_pid"); s0=$(cpu_ticks "$slack_pid")
	rec steady.load "$(load1)"
	read -r rps p99 < <(conns=16 loadgen_run "http://127.0.0.1:$ingest_port" "$dir/urls" -rate 500)
	rec steady.rps "$rps"; rec steady.p99 "$p99"
	rec steady.cpu_us "$(us_per "$(( $(cpu_ticks "$aio_pid") - t0 ))" "$rps" "$secs")"
	rec steady.rss_mib "$(( $(rss_kib "$aio_pid") / 1024 ))"
	stop "$aio_pid"
	# Plain JetStream in one process, as the all-in-one is: publish to
	# an embedded server, consume, render, post to the same fake Slack, ack.
	local pl
	pl=$(start steady-plain "$loadgen" -serve-bare "127.0.0.1:$bare_port" -publish embedded -deliver "http://127.0.0.1:$slack_port/services/T0/B0/plain" -c 16)
	wait_port "$bare_port"
	t0=$(cpu_ticks "$pl")
	read -r frps fp99 < <(conns=16 loadgen_run "http://127.0.0.1:$bare_port" "$dir/urls" -rate 500)
	rec steady.plain.rps "$frps"; rec steady.plain.p99 "$fp99"
	rec steady.plain.cpu_us "$(us_per "$(( $(cpu_ticks "$pl") - t0 ))" "$frps" "$secs")"
	stop "$pl"
	# The ceiling: the bare handler at the same rate (the fake Slack is one).
	t0=$(cpu_ticks "$slack_pid")
	read -r brps bp99 < <(conns=16 loadgen_run "http://127.0.0.1:$slack_port" "$dir/urls" -rate 500)
	rec steady.bare.rps "$brps"; rec steady.bare.p99 "$bp99"
	rec steady.bare.cpu_us "$(us_per "$(( $(cpu_ticks "$slack_pid") - t0 ))" "$brps" "$secs")"
	stop "$slack_pid"
}

# --- idle: the all-in-one with many channels and nothing to do ----------------
idle_run() {
	local dir=$work/idle
	log "idle: making $idle_channels channels"
	aio_start "$dir" "$idle_channels" "${fast_pace[@]}"
	# One event per channel first, so that every channel was seen.
	"$loadgen" -url "http://127.0.0.1:$ingest_port" -tokens "$dir/urls" -c 8 -n "$idle_channels" >/dev/null
	sleep 5
	local t0
	t0=$(cpu_ticks "$aio_pid")
	rec idle.load "$(load1)"
	sleep 20
	rec idle.cpu_pct "$(awk -v t="$(( $(cpu_ticks "$aio_pid") - t0 ))" -v h="$tck" 'BEGIN{printf "%.2f", t/h/20*100}')"
	rec idle.rss_mib "$(( $(rss_kib "$aio_pid") / 1024 ))"
	stop "$aio_pid"; stop "$slack_pid"
}

# --- storm: the all-in-one at the default pace, 10,000 events into one channel
storm_round() {
	local dir=$work/storm
	aio_start "$dir" 1 # the default pace
	rec storm.load "$(load1)"
	"$loadgen" -url "http://127.0.0.1:$ingest_port" -tokens "$dir/urls" -c 16 -n 10000 -rate 1000 >>"$work/loadgen.out"
	local end delivered=0
	end=$(date +%s%N)
	for _ in $(seq 1 1200); do
		delivered=$(delivered_count "$ingest_port")
		[ "${delivered:-0}" -ge 10000 ] && break
		sleep 0.05
	done
	[ "${delivered:-0}" -ge 10000 ] || { echo "bench: storm: $delivered of 10000 delivered after a minute" >&2; return 1; }
	rec storm.after_s "$(awk -v a="$end" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b-a)/1e9}')"
	rec storm.messages "$(curl -s "http://127.0.0.1:$ingest_port/metrics" | awk '/^jackalope_dispatch_digests_total / {printf "%d", $2}')"
	stop "$aio_pid"; stop "$slack_pid"
}

# --- drain: cmd/dispatcher, a black box, draining preloaded events -------------
# Goal 3's black-box run: 20,000 events waiting over 1,000 channels (made
# once), taken by cmd/dispatcher with $drain_posts posts in flight and every
# channel paced at 1000/s with a burst of 100, as BenchmarkDelivery, so
# that each event is one post; events/s from its first delivery to its
# last (its metrics, polled every 20 ms). The ceiling: as many posts to the
# same fake Slack by a bare loop in another process (loadgen, -c
# $drain_posts).
drain_events=$([ -n "$quick" ] && echo 4000 || echo 20000)
drain_channels=$([ -n "$quick" ] && echo 200 || echo 1000)
drain_posts=${BENCH_DRAIN_POSTS:-64}
drain_setup() {
	local dir=$work/drain
	rm -rf "$dir"; mkdir -p "$dir"
	drain_nats=$(start drain-nats "$nats" -a 127.0.0.1 -p "$drain_nats_port" -js -sd "$dir/nats")
	wait_port "$drain_nats_port"
	log "drain: making $drain_channels channels"
	make_channels "$drain_channels" "$dir/urls" --init env NATS_URL="nats://127.0.0.1:$drain_nats_port" DATA_DIR="$dir/installer" "$bin/installer"
}
# drain_time KEY PID COUNT...: waits until COUNT (a command printing how
# many events were delivered so far) reaches $drain_events, polling every
# 20 ms, and records KEY.rps (events/s from the first delivery seen to the
# last) and KEY.cpu_us (CPU of PID per event).
drain_time() {
	local key=$1 pid=$2; shift 2
	local n=0 c0=0 t0= t1 cpu0
	cpu0=$(cpu_ticks "$pid")
	for _ in $(seq 1 3000); do
		n=$("$@"); n=${n:-0}
		if [ -z "$t0" ] && [ "$n" -gt 0 ]; then t0=$(date +%s%N); c0=$n; fi
		[ "$n" -ge "$drain_events" ] && break
		sleep 0.02
	done
	t1=$(date +%s%N)
	[ "$n" -ge "$drain_events" ] || { echo "bench: drain ($key): $n of $drain_events delivered after a minute" >&2; return 1; }
	rec "$key.rps" "$(awk -v n="$n" -v c="$c0" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", (n-c)/((b-a)/1e9)}')"
	rec "$key.cpu_us" "$(us_per "$(( $(cpu_ticks "$pid") - cpu0 ))" "$drain_events" 1)"
}
# plain_delivered PORT: the events plain JetStream serving on PORT delivered
plain_delivered() { curl -s "http://127.0.0.1:$1/delivered"; }
drain_round() {
	local dir=$work/drain nats_url=nats://127.0.0.1:$drain_nats_port
	local i d p
	i=$(start drain-ingest env NATS_URL="$nats_url" LISTEN_ADDR="127.0.0.1:$ingest_port" METRICS_ADDR="127.0.0.1:$metrics_port" "$bin/ingest")
	wait_port "$ingest_port"
	"$loadgen" -url "http://127.0.0.1:$ingest_port" -tokens "$dir/urls" -c "$conns" -n "$drain_events" -strict >>"$work/loadgen.out"
	stop "$i"
	slack_pid=$(start slack "$loadgen" -serve-bare "127.0.0.1:$slack_port")
	wait_port "$slack_port"
	rec drain.load "$(load1)"
	d=$(start drain-dispatcher env NATS_URL="$nats_url" METRICS_ADDR="127.0.0.1:$metrics_port" CHANNEL_PACE=1000/s CHANNEL_BURST=100 DISPATCH_WORKERS="$drain_posts" "$bin/dispatcher")
	wait_port "$metrics_port"
	drain_time drain "$d" delivered_count "$metrics_port"
	stop "$d"
	# Plain JetStream on the same server: as many events stored through its
	# handler, then drained by its delivery loop with as many posts in
	# flight, to the same fake Slack.
	p=$(start drain-plain "$loadgen" -serve-bare "127.0.0.1:$bare_port" -publish "$nats_url")
	wait_port "$bare_port"
	"$loadgen" -url "http://127.0.0.1:$bare_port" -tokens "$dir/urls" -c "$conns" -n "$drain_events" -strict >>"$work/loadgen.out"
	stop "$p"
	p=$(start drain-plain "$loadgen" -serve-bare "127.0.0.1:$bare_port" -publish "$nats_url" -keep -c "$drain_posts" -deliver "http://127.0.0.1:$slack_port/services/T0/B0/plain")
	wait_port "$bare_port"
	drain_time drain.plain "$p" plain_delivered "$bare_port"
	stop "$p"
	local brps bp99
	read -r brps bp99 < <(conns=$drain_posts secs=120 loadgen_run "http://127.0.0.1:$slack_port" "$dir/urls" -n "$drain_events")
	rec drain.bare.rps "$brps"
	stop "$slack_pid"
}

# --- dispatch: the Go benchmarks, each beside its ceiling ---------------------
dispatch_run() {
	rec dispatch.load "$(load1)"
	# One round after the other, each running the dispatcher, plain
	# JetStream and the bare loop in turn, so that the three of a round
	# meet the same machine (-count would run each three times in a row);
	# 20,000 events each, as the issue's black-box run preloads.
	(cd "$root" && go test -c -o "$work/dispatch.test" ./internal/dispatch)
	for _ in $(seq 1 "$rounds"); do
		(cd "$root/internal/dispatch" && "$work/dispatch.test" -test.run '^$' -test.bench 'BenchmarkDelivery$' -test.benchtime "$([ -n "$quick" ] && echo 4000x || echo 20000x)")
	done |
		tee -a "$work/gobench.out" | awk '/^BenchmarkDelivery\// {split($1, a, "/"); sub(/-[0-9]+$/, "", a[3])
			for (i = 3; i < NF; i++) {
				if ($(i+1) == "events/s") print "dispatch." a[2] "." a[3] " " $i
				if ($(i+1) == "cpu-ns/op") printf "dispatch.%s.%s.cpu %.1f\n", a[2], a[3], $i / 1000
			}}' >>"$work/results"
	(cd "$root" && go test -run '^$' -bench 'BenchmarkDeliverySlack200ms' -benchtime 1x -count "$rounds" ./internal/dispatch) |
		tee -a "$work/gobench.out" | awk '/^BenchmarkDeliverySlack200ms\// {split($1, a, "/"); sub(/-[0-9]+$/, "", a[3]); for (i = 4; i < NF; i++) if ($(i+1) == "s/run") print "slow." a[2] "/" a[3] " " $i}' >>"$work/results"
}

# --- run ----------------------------------------------------------------------
for p in "$ingest_port" "$bare_port" "$slack_port" "$nats_port" "$metrics_port" "$drain_nats_port"; do port_free "$p"; done
want drain && drain_setup
log "$rounds round(s) of ${secs}s, $conns connections; scenarios: $only; load $(load1)"
for round in $(seq 1 "$rounds"); do
	r=$round
	want split && { log "round $r: split"; split_round split "$nats"; }
	if want split-old && [ -n "$nats_old" ]; then log "round $r: split-old ($nats_old)"; split_round split-old "$nats_old"; fi
	want aio && { log "round $r: aio"; aio_round; }
	want steady && { log "round $r: steady"; steady_round; }
	want storm && { log "round $r: storm"; storm_round; }
	want drain && { log "round $r: drain"; drain_round; }
done
want drain && stop "$drain_nats"
want idle && idle_run
want dispatch && { log "dispatch benchmarks"; dispatch_run; }

# --- table --------------------------------------------------------------------
# stat KEY: "median [min–max]" over the rounds
stat() {
	grep "^$1 " "$work/results" | awk '{print $2}' | sort -g | awk '
		{v[NR]=$1} END {
			if (NR == 0) {print "–"; exit}
			m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
			if (NR == 1) printf "%s\n", m; else printf "%s [%s–%s]\n", m, v[1], v[NR]}'
}
# ratio A B: median of per-round A/B with range
ratio() {
	paste <(grep "^$1 " "$work/results" | awk '{print $2}') <(grep "^$2 " "$work/results" | awk '{print $2}') |
		awk '$2 > 0 {printf "%.3f\n", $1/$2}' | sort -g | awk '
		{v[NR]=$1} END {
			if (NR == 0) {print "–"; exit}
			m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
			if (NR == 1) printf "%.2f\n", m; else printf "%.2f [%.2f–%.2f]\n", m, v[1], v[NR]}'
}
{
	echo "## make bench, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	[ -n "$nats_old_note" ] && { echo "$nats_old_note."; echo; }
	echo "$(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(go version | awk '{print $3}'), $rounds round(s) of ${secs}s, $conns connections, wrk with unique 1,023-byte bodies over $channels tokens; nats-server $(nats_version "$nats")${nats_old:+, old $(nats_version "$nats_old")}. Medians [ranges]."
	echo
	echo "| comparison | target | ceiling | ratio | target p99 ms | ceiling p99 ms | load (1 min) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for tag in split split-old aio; do
		grep -q "^$tag.rps " "$work/results" 2>/dev/null || continue
		case $tag in
			split) what="cmd/ingest + nats-server $(nats_version "$nats"), req/s" ;;
			split-old) what="cmd/ingest + nats-server $(nats_version "$nats_old"), req/s" ;;
			aio) what="all-in-one, delivering meanwhile, req/s" ;;
		esac
		echo "| $what | $(stat "$tag.rps") | bare 204: $(stat "$tag.bare.rps") | $(ratio "$tag.rps" "$tag.bare.rps") | $(stat "$tag.p99") | $(stat "$tag.bare.p99") | $(stat "$tag.load") |"
		grep -q "^$tag.pub.rps " "$work/results" 2>/dev/null || continue
		echo "| ${what%, req/s}: plain JetStream (a bare handler that publishes), req/s | $(stat "$tag.pub.rps") | bare 204: $(stat "$tag.bare.rps") | $(ratio "$tag.pub.rps" "$tag.bare.rps") | $(stat "$tag.pub.p99") | $(stat "$tag.bare.p99") | $(stat "$tag.load") |"
		echo "| ${what%, req/s}: cmd/ingest against plain JetStream, req/s | $(stat "$tag.rps") | plain: $(stat "$tag.pub.rps") | $(ratio "$tag.rps" "$tag.pub.rps") | $(stat "$tag.p99") | $(stat "$tag.pub.p99") | $(stat "$tag.load") |"
		grep -q "^$tag.grp.rps " "$work/results" 2>/dev/null || continue
		echo "| ${what%, req/s}: plain JetStream with a group commit (2 publishers; a design, not Jackalope's), req/s | $(stat "$tag.grp.rps") | bare 204: $(stat "$tag.bare.rps") | $(ratio "$tag.grp.rps" "$tag.bare.rps") | $(stat "$tag.grp.p99") | $(stat "$tag.bare.p99") | $(stat "$tag.load") |"
	done
	if grep -q "^loadgen.split.rps " "$work/results" 2>/dev/null; then
		echo "| loadgen instead of wrk: cmd/ingest, req/s | $(stat loadgen.split.rps) | bare 204: $(stat loadgen.bare.rps) | $(ratio loadgen.split.rps loadgen.bare.rps) | $(stat loadgen.split.p99) | | |"
	fi
	if grep -q "^steady.rps " "$work/results" 2>/dev/null; then
		echo "| steady 500 req/s, all-in-one delivering: µs CPU per event | $(stat steady.cpu_us) | bare 204: $(stat steady.bare.cpu_us) | $(ratio steady.cpu_us steady.bare.cpu_us) | $(stat steady.p99) | $(stat steady.bare.p99) | $(stat steady.load) |"
		if grep -q "^steady.plain.cpu_us " "$work/results" 2>/dev/null; then
			echo "| steady 500 req/s: plain JetStream in one process (publish, consume, render, post, ack): µs CPU per event | $(stat steady.plain.cpu_us) | bare 204: $(stat steady.bare.cpu_us) | $(ratio steady.plain.cpu_us steady.bare.cpu_us) | $(stat steady.plain.p99) | $(stat steady.bare.p99) | $(stat steady.load) |"
			echo "| steady 500 req/s: the all-in-one against plain JetStream, µs CPU per event | $(stat steady.cpu_us) | plain: $(stat steady.plain.cpu_us) | $(ratio steady.cpu_us steady.plain.cpu_us) | $(stat steady.p99) | $(stat steady.plain.p99) | $(stat steady.load) |"
		fi
	fi
	if grep -q "^drain.rps " "$work/results" 2>/dev/null; then
		echo "| cmd/dispatcher, black box: $drain_events preloaded events over $drain_channels channels, $drain_posts posts in flight, events/s | $(stat drain.rps) | bare posting loop, another process: $(stat drain.bare.rps) | $(ratio drain.rps drain.bare.rps) | | | $(stat drain.load) |"
		echo "| black box: plain JetStream draining as many preloaded events (consume, render, post, ack), events/s | $(stat drain.plain.rps) | bare posting loop: $(stat drain.bare.rps) | $(ratio drain.plain.rps drain.bare.rps) | | | $(stat drain.load) |"
		echo "| black box: cmd/dispatcher against plain JetStream, events/s | $(stat drain.rps) | plain: $(stat drain.plain.rps) | $(ratio drain.rps drain.plain.rps) | | | $(stat drain.load) |"
	fi
	for p in inflight=8 inflight=64; do
		grep -q "^dispatch.dispatch.$p " "$work/results" 2>/dev/null || continue
		echo "| BenchmarkDelivery $p, events/s | $(stat "dispatch.dispatch.$p") | bare posting loop: $(stat "dispatch.bare.$p") | $(ratio "dispatch.dispatch.$p" "dispatch.bare.$p") | | | $(stat dispatch.load) |"
		echo "| BenchmarkDelivery $p, µs CPU per event (process, fake Slack included) | $(stat "dispatch.dispatch.$p.cpu") | bare posting loop: $(stat "dispatch.bare.$p.cpu") | $(ratio "dispatch.bare.$p.cpu" "dispatch.dispatch.$p.cpu") | | | $(stat dispatch.load) |"
		grep -q "^dispatch.consume.$p " "$work/results" 2>/dev/null || continue
		echo "| BenchmarkDelivery $p: plain JetStream (consume, render, post, ack), events/s | $(stat "dispatch.consume.$p") | bare posting loop: $(stat "dispatch.bare.$p") | $(ratio "dispatch.consume.$p" "dispatch.bare.$p") | | | $(stat dispatch.load) |"
		echo "| BenchmarkDelivery $p: the dispatcher against plain JetStream, events/s | $(stat "dispatch.dispatch.$p") | plain: $(stat "dispatch.consume.$p") | $(ratio "dispatch.dispatch.$p" "dispatch.consume.$p") | | | $(stat dispatch.load) |"
	done
	echo
	echo "| measurement | value | load (1 min) |"
	echo "| --- | ---: | ---: |"
	for tag in split split-old; do
		grep -q "^$tag.cpu_us " "$work/results" 2>/dev/null || continue
		echo "| $tag: µs CPU per request, ingest + nats-server (bare 204) | $(stat "$tag.cpu_us") + $(stat "$tag.nats_cpu_us") ($(stat "$tag.bare.cpu_us")) | $(stat "$tag.load") |"
		grep -q "^$tag.pub.cpu_us " "$work/results" 2>/dev/null &&
			echo "| $tag: µs CPU per request, plain JetStream handler + nats-server | $(stat "$tag.pub.cpu_us") + $(stat "$tag.pub.nats_cpu_us") | $(stat "$tag.load") |"
		grep -q "^$tag.grp.cpu_us " "$work/results" 2>/dev/null &&
			echo "| $tag: µs CPU per request, plain JetStream with a group commit + nats-server | $(stat "$tag.grp.cpu_us") + $(stat "$tag.grp.nats_cpu_us") | $(stat "$tag.load") |"
	done
	if grep -q "^aio.rps " "$work/results" 2>/dev/null; then
		echo "| aio: µs CPU per request under the flood, everything included | $(stat aio.cpu_us) | $(stat aio.load) |"
		echo "| aio: peak RSS under the flood, MiB | $(stat aio.rss_peak_mib) | $(stat aio.load) |"
		echo "| aio ingest p99 ÷ split ingest p99 (goal 2) | $(ratio aio.p99 split.p99) | |"
		echo "| answers other than 204 (split / plain JetStream / aio) | $(stat split.bad) / $(stat split.pub.bad) / $(stat aio.bad) | |"
	fi
	grep -q "^drain.cpu_us " "$work/results" 2>/dev/null && echo "| cmd/dispatcher, black box: µs CPU per event (plain JetStream's loop) | $(stat drain.cpu_us) ($(stat drain.plain.cpu_us)) | $(stat drain.load) |"
	grep -q "^steady.rss_mib " "$work/results" 2>/dev/null && echo "| steady 500 req/s: RSS at the end, MiB | $(stat steady.rss_mib) | $(stat steady.load) |"
	if grep -q "^idle.cpu_pct " "$work/results" 2>/dev/null; then
		echo "| idle all-in-one with $idle_channels channels: % of a core over 20 s | $(stat idle.cpu_pct) | $(stat idle.load) |"
		echo "| idle all-in-one: RSS, MiB | $(stat idle.rss_mib) | |"
	fi
	if grep -q "^storm.after_s " "$work/results" 2>/dev/null; then
		echo "| storm: all-in-one, default pace, 10,000 events at 1,000/s into one channel: seconds from its end to the last delivered | $(stat storm.after_s) | $(stat storm.load) |"
		echo "| storm: digests sent | $(stat storm.messages) | |"
	fi
	for k in events=2000/channels=50 events=1000/channels=1000; do
		grep -q "^slow.$k " "$work/results" 2>/dev/null && echo "| Slack at 200 ms, default settings, $k: seconds to deliver all | $(stat "slow.$k") | $(stat dispatch.load) |"
	done
	echo
} >"$out"
cat "$out"
log "table written to $out; raw output in $work is removed on exit (set BENCH_KEEP=1 to keep it)"
if [ -n "${BENCH_KEEP:-}" ]; then
	trap - EXIT
	while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/pids"
	log "kept $work"
fi
