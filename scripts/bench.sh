#!/usr/bin/env bash
# bench.sh — make bench: a throwaway bench fleet on fixed high ports, rate
# searches through nginx for each backend and a baseline, memory, cold start,
# the Go benchmarks, all written to BENCHMARKS.md.
set -euo pipefail
SCRIPT=bench

usage() {
	cat <<'EOF'
Usage: scripts/bench.sh [--out FILE] [--quick] [--no-go-bench]
       (make bench runs make build, then this)

Brings up a throwaway bench fleet on fixed high ports that never collide
with the dev fleet — its own redis-server without persistence (16390),
bin/mockllm with zero latency (19990), two bot instances (18180, 18181,
log level warn), nginx on 18799 rendered by scripts/render_nginx.sh
(PRIMARIES "18180:1 18181:1", no backup) and a baseline nginx on 18798
proxying straight to mockllm — and measures, everything on this machine:

  1. baseline: nginx -> mockllm, POST /v1/chat/completions (loadtest
     --target completions), rate search;
  2. backend openai -> mockllm: rate search through nginx with
     conversations of 60 turns (memory.max_entries 100, so history grows
     to 100 entries); each instance's RSS at the end of every step and a
     5 s CPU profile of the first instance during every step (the one of
     the highest step that held is reported); then a closed-model run
     with 200 users (the seeds' JMeter test) checking continuity;
  3. backend builtin: the same rate search;
  4. cold start to ready: a fresh instance, /ready polled every ~1-2 ms,
     the median of 5 starts;
  5. the fleet is torn down, then the Go benchmarks of the turn path
     (pkg/chat, pkg/memory, pkg/llm) and the round-trip test.

A step of a rate search holds when its p99 is at most 50 ms, no request
failed, it achieved at least 95% of the offered rate and at most 1% of its
requests went out late; the search stops after the first step that does not
hold. Writes BENCHMARKS.md (or --out) and keeps the raw reports (JSON,
profiles, logs) in run/bench. Every process it starts is stopped by pid when
it ends, fails or is interrupted (Ctrl-C).

  --out FILE      write the report there (default BENCHMARKS.md)
  --quick         a smoke run: 2 s steps, 0.5 s warm-up, 3 cold starts
  --no-go-bench   skip the Go benchmarks (their section says so)
  -h, --help      this text

Environment (defaults in brackets):
  BENCH_DIR [run/bench]  BENCH_REDIS_PORT [16390]  BENCH_MOCK_PORT [19990]
  BENCH_PORTS ["18180 18181"]  BENCH_COLD_PORT [18182]
  BENCH_NGINX_PORT [18799]  BENCH_BASELINE_PORT [18798]
  BENCH_STEP [8s]  BENCH_WARMUP [2s]  BENCH_PAUSE [1s]
  BENCH_START [1000] first rate of every ladder, x BENCH_FACTOR [1.15] per
  step, up to BENCH_MAX_RATE [40000]; or explicit comma-separated ladders
  BENCH_RATES_BASELINE, BENCH_RATES_OPENAI, BENCH_RATES_BUILTIN
  BENCH_TURNS [60]  BENCH_MAX_ENTRIES [100]  BENCH_SESSIONS_PER_RPS [0.1]
  BENCH_USERS [200]  BENCH_COLD_STARTS [5]
  BENCH_NGINX_KEEPALIVE [the template's]  idle upstream connections per
  nginx worker, for experiments
EOF
}

out=BENCHMARKS.md quick=no go_bench=yes hook=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--out)
		[ $# -ge 2 ] || {
			echo "bench: --out needs a file" >&2
			exit 2
		}
		out=$2
		shift 2
		;;
	--quick)
		quick=yes
		shift
		;;
	--no-go-bench)
		go_bench=no
		shift
		;;
	--step-hook) # internal: loadtest --step-cmd calls this between steps
		[ $# -ge 2 ] || exit 2
		hook=$2
		shift 2
		;;
	*)
		echo "bench: unexpected argument $1 (see --help)" >&2
		exit 2
		;;
	esac
done
cd "$(dirname "$0")/.."
root=$PWD
export LC_ALL=C # decimal points in EPOCHREALTIME, awk and sort

export BENCH_DIR=${BENCH_DIR:-run/bench}
RUN_DIR=$BENCH_DIR
LOG_DIR=$BENCH_DIR/logs
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

redis_port=${BENCH_REDIS_PORT:-16390}
mock_port=${BENCH_MOCK_PORT:-19990}
read -r -a bot_ports <<<"${BENCH_PORTS:-18180 18181}"
cold_port=${BENCH_COLD_PORT:-18182}
nginx_port=${BENCH_NGINX_PORT:-18799}
base_port=${BENCH_BASELINE_PORT:-18798}
step=${BENCH_STEP:-8s}
warmup=${BENCH_WARMUP:-2s}
pause=${BENCH_PAUSE:-1s}
start_rate=${BENCH_START:-1000}
factor=${BENCH_FACTOR:-1.15}
max_rate=${BENCH_MAX_RATE:-40000}
turns=${BENCH_TURNS:-60}
max_entries=${BENCH_MAX_ENTRIES:-100}
per_rps=${BENCH_SESSIONS_PER_RPS:-0.1}
users=${BENCH_USERS:-200}
cold_starts=${BENCH_COLD_STARTS:-5}
if [ "$quick" = yes ]; then
	step=2s warmup=500ms pause=500ms cold_starts=3
fi
export API_KEY=bench-key
export BENCH_KEY=$API_KEY

# ---------------------------------------------------------------- step hook
# loadtest --step-cmd runs "scripts/bench.sh --step-hook CONFIG" when a
# step's window starts (a 5 s CPU profile of the first instance, with the
# turns it served meanwhile) and after the step (each instance's RSS).
if [ -n "$hook" ]; then
	p=${bot_ports[0]}
	turns_total() {
		curl -s -m 2 "http://127.0.0.1:$p/metrics" | awk '/^botfleet_chat_turns_total/ {s += $NF} END {printf "%d\n", s}'
	}
	# ticks PID...: the CPU time (user + system, clock ticks) of the processes.
	ticks() {
		local t=0 pid v
		for pid in "$@"; do
			v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null || true)
			t=$((t + ${v:-0}))
		done
		echo "$t"
	}
	# cpu_snapshot: "component ticks" for every part of the bench machine.
	cpu_snapshot() {
		local port pid lt m
		for port in "${bot_ports[@]}"; do
			echo "bot:$port $(ticks "$(instance_pid "$port")")"
		done
		m=$(tr -dc '0-9' <"$BENCH_DIR/nginx/nginx.pid" 2>/dev/null || true)
		# shellcheck disable=SC2046 # one word per pid
		[ -z "$m" ] || echo "nginx $(ticks $(ps -o pid= --ppid "$m"))"
		echo "redis $(ticks "$(tr -dc '0-9' <"$BENCH_DIR/redis.pid")")"
		echo "mockllm $(ticks "$(tr -dc '0-9' <"$BENCH_DIR/mockllm.pid")")"
		# The load generator is this hook's ancestor.
		lt=$$
		while [ -n "$lt" ] && [ "$lt" -gt 1 ] && [ "$(cat "/proc/$lt/comm" 2>/dev/null)" != loadtest ]; do
			lt=$(awk '{sub(/.*\) /, ""); print $2}' "/proc/$lt/stat" 2>/dev/null || true)
		done
		[ -z "$lt" ] || [ "$lt" -le 1 ] || echo "loadtest $(ticks "$lt")"
		# The whole machine: busy (user, nice, system, irq, softirq) and
		# stolen by the hypervisor.
		awk '$1 == "cpu" {print "~busy", $2 + $3 + $4 + $7 + $8; print "~steal", $9}' /proc/stat
	}
	case "${LOADTEST_PHASE:-}" in
	measure)
		c0=$(turns_total)
		s0=$(cpu_snapshot)
		t0=$EPOCHREALTIME
		curl -s -m 20 -H "Authorization: Bearer $BENCH_KEY" -o "$BENCH_DIR/cpu_${hook}_${LOADTEST_RATE}.pb.gz" \
			"http://127.0.0.1:$p/debug/pprof/profile?seconds=5" || true
		t1=$EPOCHREALTIME
		s1=$(cpu_snapshot)
		c1=$(turns_total)
		echo "$LOADTEST_RATE $c0 $c1" >>"$BENCH_DIR/cpu_$hook.txt"
		# cores used by each component over the profile's window
		join <(sort <<<"$s0") <(sort <<<"$s1") |
			awk -v hz="$(getconf CLK_TCK)" -v a="$t0" -v b="$t1" '{printf "%s %.2f\n", $1, ($3 - $2) / hz / (b - a)}' \
				>"$BENCH_DIR/cores_${hook}_${LOADTEST_RATE}.txt"
		;;
	done)
		line="$LOADTEST_RATE ${LOADTEST_HELD:-?}"
		for port in "${bot_ports[@]}"; do
			pid=$(instance_pid "$port")
			rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
			line+=" ${rss:-0}"
		done
		echo "$line" >>"$BENCH_DIR/rss_$hook.txt"
		;;
	esac
	exit 0
fi

# ---------------------------------------------------------------- checks
for v in "$redis_port" "$mock_port" "${bot_ports[@]}" "$cold_port" "$nginx_port" "$base_port"; do
	if ! [[ $v =~ ^[0-9]+$ ]] || [ "$v" -lt 1 ] || [ "$v" -gt 65535 ]; then die "bad port '$v' (see --help)"; fi
done
[ ${#bot_ports[@]} -ge 1 ] || die "BENCH_PORTS is empty"
for b in bin/bot bin/loadtest bin/mockllm; do
	[ -x "$b" ] || die "$b not found; run: make build (make bench does)"
done
# redis-server, nginx and curl from Debian's packages when missing (as root;
# otherwise it prints the command).
scripts/install_deps.sh || die "missing system packages (see above)"
need_curl
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	die "redis-server/redis-cli not found; run scripts/install_deps.sh as root, or: sudo apt-get install -y redis-server redis-tools"
fi
nginx=$(command -v nginx || true)
[ -n "$nginx" ] || { [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx; } ||
	die "nginx not found; run scripts/install_deps.sh as root, or: sudo apt-get install -y nginx"
if [ "$go_bench" = yes ]; then
	command -v go >/dev/null 2>&1 || die "go not found (needed for the Go benchmarks; --no-go-bench skips them)"
fi
[ "${EPOCHREALTIME:-}" ] || die "bash 5 is needed (EPOCHREALTIME)"

mkdir -p "$BENCH_DIR" "$LOG_DIR"
# A bench still running (its pid files name live processes) owns the ports.
for f in "$BENCH_DIR"/*.pid "$BENCH_DIR"/nginx*/nginx.pid; do
	[ -f "$f" ] || continue
	pid=$(tr -dc '0-9' <"$f")
	if alive "$pid"; then
		die "a bench fleet is still running ($f: pid $pid); stop it first (kill $pid) or wait for it"
	fi
	rm -f "$f"
done
taken=()
for p in "$redis_port" "$mock_port" "${bot_ports[@]}" "$cold_port" "$nginx_port" "$base_port"; do
	if listening "$p"; then
		owner=$(port_owner "$p")
		taken+=("$p${owner:+ ($owner)}")
	fi
done
[ ${#taken[@]} -eq 0 ] || die "port(s) taken: ${taken[*]}; stop what listens there or choose other ports (BENCH_*_PORT, BENCH_PORTS; see --help)"

# ---------------------------------------------------------------- teardown
redis_pidfile=$BENCH_DIR/redis.pid
mock_pidfile=$BENCH_DIR/mockllm.pid
cold_pidfile=$BENCH_DIR/cold.pid

# stop_file PIDFILE NAME: stop the process a pid file names, then remove it.
stop_file() {
	local pid
	[ -f "$1" ] || return 0
	pid=$(tr -dc '0-9' <"$1")
	[ -z "$pid" ] || stop_pid "$pid" 5 "$2" || true
	rm -f "$1"
}

teardown() {
	local pid
	for pfx in nginx nginx-baseline; do
		if [ -f "$BENCH_DIR/$pfx/nginx.pid" ]; then
			pid=$(tr -dc '0-9' <"$BENCH_DIR/$pfx/nginx.pid")
			if alive "$pid"; then
				kill -QUIT "$pid" 2>/dev/null || true
				stop_pid "$pid" 5 "$pfx" || true
			fi
			rm -f "$BENCH_DIR/$pfx/nginx.pid"
		fi
	done
	for p in "${bot_ports[@]}" "$cold_port"; do
		pid=$(instance_pid "$p")
		[ -z "$pid" ] || stop_pid "$pid" 10 "instance $p" || true
		rm -f "$(pidfile "$p")"
	done
	stop_file "$cold_pidfile" "cold-start instance"
	stop_file "$mock_pidfile" mockllm
	stop_file "$redis_pidfile" redis-server
}
trap 'teardown' EXIT
trap 'warn "interrupted"; exit 130' INT
trap 'warn "terminated"; exit 143' TERM

t_begin=$EPOCHREALTIME
abs_dir=$(cd "$BENCH_DIR" && pwd)
# The previous run's reports and logs (nginx's access logs grow by ~70 MB a run).
rm -f "$BENCH_DIR"/*.txt "$BENCH_DIR"/*.json "$BENCH_DIR"/*.md "$BENCH_DIR"/*.pb.gz "$BENCH_DIR"/*.log \
	"$BENCH_DIR"/nginx*/logs/*.log "$LOG_DIR"/*.log "$LOG_DIR"/*.out

# ---------------------------------------------------------------- fleet
say "redis-server on 127.0.0.1:$redis_port (no persistence)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$abs_dir" \
	--daemonize yes --pidfile "$abs_dir/redis.pid" --logfile "$abs_dir/logs/redis.log" >/dev/null
for ((i = 0; i < 50; i++)); do
	redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
	sleep 0.1
done
redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG || die "redis-server did not come up; see $LOG_DIR/redis.log"

say "mockllm on 127.0.0.1:$mock_port (zero latency)"
setsid nohup bin/mockllm --addr "127.0.0.1:$mock_port" --latency 0 </dev/null >>"$LOG_DIR/mockllm.log" 2>&1 &
echo $! >"$mock_pidfile"
for ((i = 0; i < 50; i++)); do
	[ "$(http_status "http://127.0.0.1:$mock_port/health")" = 200 ] && break
	sleep 0.1
done
[ "$(http_status "http://127.0.0.1:$mock_port/health")" = 200 ] || die "mockllm did not come up; see $LOG_DIR/mockllm.log"

# start_nginx NAME LISTEN PRIMARIES: render and start one nginx from the
# prefix $BENCH_DIR/NAME.
start_nginx() {
	local name=$1 listen=$2 prim=$3 pfx pid
	pfx=$abs_dir/$name
	mkdir -p "$pfx/logs"
	PRIMARIES=$prim BACKUPS="" LISTEN=$listen scripts/render_nginx.sh -o "$pfx/nginx.conf"
	if [ -n "${BENCH_NGINX_KEEPALIVE:-}" ]; then
		[[ $BENCH_NGINX_KEEPALIVE =~ ^[0-9]+$ ]] || die "bad BENCH_NGINX_KEEPALIVE '$BENCH_NGINX_KEEPALIVE'"
		sed -i "s/^\( *keepalive \)[0-9]*;/\1$BENCH_NGINX_KEEPALIVE;/" "$pfx/nginx.conf"
	fi
	"$nginx" -q -p "$pfx/" -c "$pfx/nginx.conf" || die "nginx ($name) did not start; see $pfx/logs/error.log"
	for ((i = 0; i < 50; i++)); do
		pid=$(tr -dc '0-9' <"$pfx/nginx.pid" 2>/dev/null || true)
		alive "$pid" && listening "${listen##*:}" && break
		sleep 0.1
	done
	alive "$pid" || die "nginx ($name) did not start; see $pfx/logs/error.log"
	say "nginx ($name) on $listen -> $prim (pid $pid)"
}
bot_prim=""
for p in "${bot_ports[@]}"; do bot_prim+="$p:1 "; done
start_nginx nginx "127.0.0.1:$nginx_port" "${bot_prim% }"
start_nginx nginx-baseline "127.0.0.1:$base_port" "$mock_port:1"

# bot_env BACKEND: the instances' environment for a backend, as VAR=value
# words for env(1). The load comes from one address, so the per-IP limit
# (1000/s) is off: the bench measures capacity, not the limit.
bot_env() {
	local e=(API_KEY="$API_KEY" REDIS_HOST=127.0.0.1 REDIS_PORT="$redis_port" REDIS_PASSWORD=
		BOT_LOG_LEVEL=warn BOT_SERVER_PPROF=true BOT_MEMORY_MAX_ENTRIES="$max_entries" BOT_LLM_PROVIDER="$1"
		BOT_RATELIMIT_PER_IP=0)
	if [ "$1" = openai ]; then
		e+=(MODEL_ENDPOINT="http://127.0.0.1:$mock_port/v1" MODEL_SERVICE_KEY=bench BOT_LLM_MODEL=mock-1)
	fi
	printf '%s\n' "${e[@]}"
}

# start_bots BACKEND: (re)start the instances with that backend.
start_bots() {
	local envs
	mapfile -t envs < <(bot_env "$1")
	stop_bots
	redis-cli -p "$redis_port" flushall >/dev/null
	env "${envs[@]}" PORTS="${bot_ports[*]}" RUN_DIR="$BENCH_DIR" LOG_DIR="$LOG_DIR" CONFIG="" LOG_LEVEL=warn \
		scripts/start_multiple_instances.sh >/dev/null || die "the instances did not start (backend $1); see $LOG_DIR"
	say "instances ${bot_ports[*]} ready (backend $1)"
}
stop_bots() {
	local pid
	for p in "${bot_ports[@]}"; do
		pid=$(instance_pid "$p")
		[ -z "$pid" ] || stop_pid "$pid" 10 "instance $p" || true
		rm -f "$(pidfile "$p")"
	done
}

# ladder NAME: the --rates or ladder flags of a search.
ladder() {
	local v="BENCH_RATES_$1"
	if [ -n "${!v:-}" ]; then
		echo "--rates ${!v}"
	else
		echo "--rate $start_rate --step-factor $factor --max-rate $max_rate"
	fi
}

# search NAME URL [LOADTEST FLAGS...]: a rate search; results in
# $BENCH_DIR/search_NAME.{json,md,txt}.
search() {
	local name=$1 url=$2 rc=0
	local -a lad
	shift 2
	read -r -a lad <<<"$(ladder "${name^^}")"
	say "rate search: $name ($url)"
	bin/loadtest --url "$url" --search "${lad[@]}" --duration "$step" --warmup "$warmup" --pause "$pause" \
		--slo-p99 50ms --json "$BENCH_DIR/search_$name.json" --markdown "$BENCH_DIR/search_$name.md" --quiet "$@" \
		| tee "$BENCH_DIR/search_$name.txt" || rc=$?
	[ "$rc" = 0 ] || warn "rate search $name: no step held or it failed (exit $rc); see $BENCH_DIR/search_$name.txt"
}

# max_of NAME: the max sustained rate of a search (0 when none held).
max_of() {
	sed -n 's/^max sustained: \([0-9.][0-9.]*\) req\/s.*/\1/p' "$BENCH_DIR/search_$1.txt" 2>/dev/null | head -1 | grep . || echo 0
}

# row NAME RATE COLUMN: a column of the Markdown table's row for RATE
# (3 p50, 4 p99, 5 p99.9).
row() {
	awk -F'|' -v r="$2" -v c="$(($3 + 1))" '$2 + 0 == r + 0 && $2 ~ /[0-9]/ {gsub(/^ +| +$/, "", $c); print $c; exit}' "$BENCH_DIR/search_$1.md" 2>/dev/null
}

# ---------------------------------------------------------------- 1. baseline
search baseline "http://127.0.0.1:$base_port" --target completions --model mock-1 --turns 0 --sessions-per-rps "$per_rps"

# ---------------------------------------------------------------- 2. openai
conv=(--turns "$turns" --sessions-per-rps "$per_rps")
start_bots openai
search openai "http://127.0.0.1:$nginx_port" "${conv[@]}" --step-cmd "scripts/bench.sh --step-hook openai"
say "closed model: $users users through nginx (backend openai)"
users_rc=0
bin/loadtest --url "http://127.0.0.1:$nginx_port" --users "$users" --duration "$step" --warmup "$warmup" --turns "$turns" \
	--quiet --json "$BENCH_DIR/users.json" | tee "$BENCH_DIR/users.txt" || users_rc=$?

# ---------------------------------------------------------------- 3. builtin
start_bots builtin
search builtin "http://127.0.0.1:$nginx_port" "${conv[@]}" --step-cmd "scripts/bench.sh --step-hook builtin"
stop_bots

# ---------------------------------------------------------------- 4. cold start
# The time from exec to the first 200 on /ready (Redis reachable), polled
# with bash's /dev/tcp (no process per probe) every ~1-2 ms.
ready_probe() {
	local line
	{ exec 3<>"/dev/tcp/127.0.0.1/$cold_port"; } 2>/dev/null || return 1
	printf 'GET /ready HTTP/1.0\r\nHost: x\r\n\r\n' >&3
	IFS= read -r -t 1 line <&3 || line=""
	exec 3<&- 3>&-
	[[ $line == HTTP/1.?" 200"* ]]
}
mapfile -t cold_env < <(bot_env openai)
cold_ms=()
for ((k = 0; k < cold_starts; k++)); do
	t0=$EPOCHREALTIME
	env "${cold_env[@]}" setsid "$root/bin/bot" --port "$cold_port" --log-level warn --log-file "$LOG_DIR/cold.log" \
		</dev/null >>"$LOG_DIR/cold.out" 2>&1 &
	echo $! >"$cold_pidfile"
	ok=no
	while :; do
		if ready_probe; then
			ok=yes
			break
		fi
		alive "$(cat "$cold_pidfile")" || break
		t=$EPOCHREALTIME
		[ "$(((${t/./} - ${t0/./}) / 1000))" -lt 10000 ] || break # ms
		sleep 0.001
	done
	t1=$EPOCHREALTIME
	stop_file "$cold_pidfile" "cold-start instance"
	[ $ok = yes ] || die "the cold-start instance on $cold_port did not turn ready in 10 s; see $LOG_DIR/cold.out"
	cold_ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) * 1000}')")
done
cold_median=$(printf '%s\n' "${cold_ms[@]}" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
say "cold start to ready: ${cold_ms[*]} ms (median $cold_median ms)"

# The versions, then the fleet goes: the Go benchmarks get the machine.
redis_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
nginx_version=$("$nginx" -v 2>&1 | sed 's/^nginx version: //')
teardown
t_fleet=$EPOCHREALTIME

# ---------------------------------------------------------------- 5. Go benchmarks
go_out=$BENCH_DIR/gobench.txt rt_result="not run"
if [ "$go_bench" = yes ]; then
	say "Go benchmarks: pkg/chat pkg/memory pkg/llm"
	go test -run '^$' -bench . -benchmem ./pkg/chat ./pkg/memory ./pkg/llm 2>&1 | tee "$go_out" || warn "the Go benchmarks failed; see $go_out"
	if go test -count=1 -run '^TestTurnsAreTwoRoundTrips$' ./pkg/chat >"$BENCH_DIR/roundtrips.txt" 2>&1; then
		rt_result=2
	else
		rt_result="FAILED (see $BENCH_DIR/roundtrips.txt)"
	fi
fi

# ---------------------------------------------------------------- report
# cpu_of NAME RATE: "µs-per-turn|cpu-seconds|turns" of the profile taken in
# the step at RATE, and its top 10 in $BENCH_DIR/top_NAME.txt.
cpu_of() {
	local name=$1 rate=$2 prof c0 c1 secs
	prof=$BENCH_DIR/cpu_${name}_$rate.pb.gz
	[ -s "$prof" ] && command -v go >/dev/null 2>&1 || return 0
	read -r _ c0 c1 < <(awk -v r="$rate" '$1 + 0 == r + 0' "$BENCH_DIR/cpu_$name.txt") || return 0
	go tool pprof -top -nodecount=10 bin/bot "$prof" 2>/dev/null >"$BENCH_DIR/top_$name.txt" || return 0
	secs=$(sed -n 's/.*Total samples = \([0-9.]*\)\([mµu]*s\).*/\1 \2/p' "$BENCH_DIR/top_$name.txt" |
		awk '{v = $1; if ($2 == "ms") v /= 1000; else if ($2 != "s") v /= 1e6; print v}')
	[ -n "$secs" ] && [ "$((c1 - c0))" -gt 0 ] || return 0
	awk -v s="$secs" -v n="$((c1 - c0))" 'BEGIN {printf "%.0f|%.2f|%d\n", s * 1e6 / n, s, n}'
}
# rss_of NAME RATE: the instances' RSS in MB at the end of the step at RATE.
rss_of() {
	awk -v r="$2" '$1 + 0 == r + 0 {for (i = 3; i <= NF; i++) printf "%s%.1f MB", (i > 3 ? ", " : ""), $i / 1024; exit}' \
		"$BENCH_DIR/rss_$1.txt" 2>/dev/null
}
rss_max_of() {
	awk -v r="$2" '$1 + 0 == r + 0 {m = 0; for (i = 3; i <= NF; i++) if ($i > m) m = $i; printf "%.0f", m / 1024; exit}' \
		"$BENCH_DIR/rss_$1.txt" 2>/dev/null
}

max_base=$(max_of baseline) max_openai=$(max_of openai) max_builtin=$(max_of builtin)
ratio=$(awk -v a="$max_openai" -v b="$max_base" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}')
ratio_builtin=$(awk -v a="$max_builtin" -v b="$max_base" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}')
# A common rate: the highest rate both the baseline and openai held.
common=$(awk -v m="$max_openai" -v b="$max_base" 'BEGIN {print (m < b) ? m : b}')
p50_base=$(row baseline "$common" 3) p50_openai=$(row openai "$common" 3)
p99_base=$(row baseline "$common" 4) p99_openai=$(row openai "$common" 4)
p50_diff=$(awk -v a="${p50_openai% ms}" -v b="${p50_base% ms}" 'BEGIN {printf "%+.2f ms", a - b}')
IFS='|' read -r cpu_openai cpus_openai turns_openai <<<"$(cpu_of openai "$max_openai")"
IFS='|' read -r cpu_builtin cpus_builtin turns_builtin <<<"$(cpu_of builtin "$max_builtin")"
rss_openai=$(rss_of openai "$max_openai") rss_builtin=$(rss_of builtin "$max_builtin")
rssmax_openai=$(rss_max_of openai "$max_openai")
users_cont=$(sed -n 's/^  continuity  //p' "$BENCH_DIR/users.txt" | head -1)

# proc_us NAME RATE: both instances' CPU µs per turn during the profile of
# the step at RATE.
proc_us() {
	local f=$BENCH_DIR/cores_${1}_$2.txt
	[ -s "$f" ] || {
		echo "?"
		return 0
	}
	awk -v r="$2" '/^bot:/ {b += $2} END {printf "%.0f", b * 1e6 / r}' "$f"
}

# cores_of NAME RATE: a Markdown row of the cores each component used
# during the profile of the step at RATE.
cores_of() {
	local f=$BENCH_DIR/cores_${1}_$2.txt
	[ -s "$f" ] || return 0
	awk -v n="$1" -v r="$2" '
		/^bot:/ {bots += $2; next}
		{v[$1] = $2}
		END {tot = bots + v["nginx"] + v["redis"] + v["mockllm"] + v["loadtest"]
			other = v["~busy"] - tot; if (other < 0) other = 0
			printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f µs | %.2f | %.2f |\n", n, r, bots, v["nginx"], v["redis"], v["mockllm"], v["loadtest"], tot, tot * 1e6 / r, other, v["~steal"]}' "$f"
}

yes_no() { if awk "BEGIN {exit !($1)}"; then echo "**met**"; else echo "**not met**"; fi; }
t_end=$EPOCHREALTIME
elapsed=$(awk -v a="$t_begin" -v b="$t_end" 'BEGIN {printf "%.0f", b - a}')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_total=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
go_version=$(go version 2>/dev/null | awk '{print $3}' || echo "?")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
dirty=""
if git status --porcelain 2>/dev/null | grep -q .; then dirty=" (with uncommitted changes)"; fi

{
	cat <<EOF
# Benchmarks

Generated by \`make bench\` (\`scripts/bench.sh\`) on $(date -u '+%Y-%m-%d %H:%M UTC') from commit \`$commit\`$dirty, in ${elapsed} s.
Do not edit: run \`make bench\` again.

## Against the issue's targets

| target | result | |
|---|---|---|
| ≥ 3,000 chat turns/s through nginx, P99 < 50 ms, zero errors (backend openai → mockllm, history up to 100) | $max_openai turns/s | $(yes_no "$max_openai >= 3000") |
| two Redis round trips per turn | $rt_result | $(case $rt_result in 2) echo "**met**" ;; "not run") echo "not measured" ;; *) echo "**not met**" ;; esac) |
| instance RSS < 100 MB at that rate | ${rss_openai:-?} at $max_openai turns/s | $(yes_no "${rssmax_openai:-999} < 100") |
| cold start to ready < 200 ms | median $cold_median ms | $(yes_no "$cold_median < 200") |

Max sustained with P99 ≤ 50 ms and zero errors, through nginx: **$max_openai turns/s** (backend
openai → mockllm), **$max_builtin turns/s** (builtin); the baseline, nginx → mockllm without the bot:
**$max_base req/s**. Everything on this machine's $(nproc) cores, the load generator included.

## Machine and versions

| | |
|---|---|
| CPU | $(nproc) × $cpu_model |
| memory | $mem_total |
| kernel | $(uname -sr) |
| Go | $go_version |
| redis-server | $redis_version |
| nginx | $nginx_version |

Everything runs on this one machine and shares its $(nproc) cores: the load generator
(\`bin/loadtest\`), nginx (2 workers), the two bot instances, Redis and mockllm.

## Settings

- Bench fleet on fixed ports: redis-server :$redis_port (no persistence), mockllm :$mock_port
  (zero latency), bot instances :${bot_ports[*]} (log level warn, \`server.pprof\` on,
  \`memory.max_entries\` $max_entries, first-turn cache on as by default), nginx :$nginx_port from
  \`nginx/nginx.conf.tmpl\` (\`PRIMARIES="${bot_prim% }"\`, no backup, access log on), and a baseline
  nginx :$base_port from the same template with mockllm as its only upstream.
- Rate search (\`loadtest --search\`, open model, latency from each request's intended send
  time): steps of $step after a $warmup warm-up, $pause apart, each with fresh conversations;
  ladder from $start_rate req/s × $factor per step. A step **holds** when p99 ≤ 50 ms, no request
  failed, achieved ≥ 95% of offered and ≤ 1% of requests went out late; the search stops after
  the first step that does not hold.
- Bot runs: \`POST /v1/chat\` through nginx, conversations of $turns turns (then a fresh one takes
  the place), ceil(rate × $per_rps) conversations per step: each conversation gets a turn about
  every $(awk -v f="$per_rps" 'BEGIN {printf "%.0f", f * 1000}') ms, so every step's history grows the same way. The history
  before turn k is min(2(k−1), $max_entries) entries: up to $max_entries, $(awk -v t="$turns" -v m="$max_entries" 'BEGIN {s = 0; for (k = 1; k <= t; k++) {h = 2 * (k - 1); if (h > m) h = m; s += h}; printf "%.0f", s / t}') on average.
  Continuity (the reply's \`turn\`) is checked on every reply.
- Baseline: \`POST /v1/chat/completions\` (\`loadtest --target completions\`) through nginx straight
  to mockllm: what nginx, the load generator and the machine cost without the bot. Its requests
  carry one message; the bot's calls to mockllm carry the system prompt and the history too.
- The load generator keeps ceil(rate × $per_rps) conversations, so at most that many requests in
  flight (~$(awk -v f="$per_rps" 'BEGIN {printf "%.0f", f * 1000}') ms of latency at the offered rate): a server slower than that makes requests
  go out late (counted) and, past the window, dropped (counted as errors).
- During every bot step: a 5 s CPU profile of the first instance
  (\`/debug/pprof/profile?seconds=5\`, sampling at 100 Hz), the CPU time of every process in
  that window, and each instance's RSS (\`VmRSS\`) at the step's end; the ones of the highest
  step that held are reported.

## Baseline: nginx → mockllm (no bot)

$(cat "$BENCH_DIR/search_baseline.md" 2>/dev/null || echo "(no result)")

## Backend \`openai\` → mockllm, through nginx

$(cat "$BENCH_DIR/search_openai.md" 2>/dev/null || echo "(no result)")

## Backend \`builtin\`, through nginx

$(cat "$BENCH_DIR/search_builtin.md" 2>/dev/null || echo "(no result)")

## Overhead against the baseline

| | max sustained (p99 ≤ 50 ms) | ÷ baseline |
|---|---:|---:|
| baseline: nginx → mockllm | $max_base req/s | 1 |
| bot, backend openai → mockllm | $max_openai turns/s | $ratio |
| bot, backend builtin | $max_builtin turns/s | $ratio_builtin |

At $common req/s, which both held: p50 ${p50_openai:-?} through the bot vs ${p50_base:-?} baseline
($p50_diff), p99 ${p99_openai:-?} vs ${p99_base:-?}.

## Per instance at the highest step that held

| backend | step | RSS at its end | CPU per turn (profile) | profile: CPU s / turns in 5 s | CPU per turn (/proc) |
|---|---:|---|---:|---:|---:|
| openai | $max_openai | ${rss_openai:-?} | ${cpu_openai:-?} µs | ${cpus_openai:-?} s / ${turns_openai:-?} | $(proc_us openai "$max_openai") µs |
| builtin | $max_builtin | ${rss_builtin:-?} | ${cpu_builtin:-?} µs | ${cpus_builtin:-?} s / ${turns_builtin:-?} | $(proc_us builtin "$max_builtin") µs |

CPU per turn (profile) is the first instance's profile CPU time divided by the turns it served
while the profile ran (\`botfleet_chat_turns_total\`): everything the process spends per turn,
HTTP, JSON, Redis client and the backend call included. CPU per turn (/proc) is both instances'
CPU time in the same window (user + system, \`/proc/PID/stat\`) divided by the turns the fleet
served (the step's rate); the profiler's sampling misses some of it. Top 10 functions of the openai profile
(\`go tool pprof -top -nodecount=10 bin/bot $BENCH_DIR/cpu_openai_$max_openai.pb.gz\`):

\`\`\`
$(sed -n '/flat%/,$p' "$BENCH_DIR/top_openai.txt" 2>/dev/null || echo "(no profile)")
\`\`\`

and of the builtin profile:

\`\`\`
$(sed -n '/flat%/,$p' "$BENCH_DIR/top_builtin.txt" 2>/dev/null || echo "(no profile)")
\`\`\`

Where the machine's $(nproc) cores go during that profile (CPU seconds per second, from
\`/proc/PID/stat\`; "bots" is both instances; "other" is the rest of the machine's busy time
from \`/proc/stat\` — kernel work not charged to a process, and anything else running — and
"steal" the time the hypervisor gave to other guests):

| backend | step | bots | nginx | redis | mockllm | loadtest | total | machine CPU per turn | other | steal |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(cores_of openai "$max_openai")
$(cores_of builtin "$max_builtin")

## Cold start to ready

$cold_starts starts of a fresh instance (backend openai) against the running Redis, from \`exec\` to
the first \`200\` on \`/ready\` (polled every ~1–2 ms): ${cold_ms[*]} ms — median **$cold_median ms**.

## $users users (closed model, the seeds' JMeter test)

\`loadtest --users $users --turns $turns --duration $step --warmup $warmup\` (no think time) through
nginx, backend openai → mockllm, continuity checked on every reply:

\`\`\`
$(cat "$BENCH_DIR/users.txt" 2>/dev/null || echo "(no result)")
\`\`\`

$(if [ "$users_rc" = 0 ] && [[ $users_cont == *" 0 broken"* ]]; then echo "Zero continuity errors."; else echo "**The run failed or broke continuity (exit $users_rc): see above.**"; fi)

## Go benchmarks of the turn path

\`go test -run '^\$' -bench . -benchmem ./pkg/chat ./pkg/memory ./pkg/llm\` (real redis-server on
loopback, in-process backends), after the bench fleet was stopped:

\`\`\`
$(grep -E '^(Benchmark|goos|cpu|ok|FAIL|---)' "$go_out" 2>/dev/null || echo "(not run)")
\`\`\`

Redis round trips per turn (\`TestTurnsAreTwoRoundTrips\` in \`pkg/chat\`, first turn with the
cache and a later turn): **$rt_result**.

## Reproduce

\`\`\`sh
make bench            # make build, then scripts/bench.sh: about 5–10 minutes, writes BENCHMARKS.md
scripts/bench.sh --help   # ports, step length, ladders, --quick
\`\`\`

The raw reports stay in \`$BENCH_DIR/\`: \`search_*.json\` (every step with the loadtest JSON keys),
\`search_*.md\`, \`users.json\`, \`cpu_*.pb.gz\` (open with \`go tool pprof bin/bot FILE\`),
\`rss_*.txt\`, \`gobench.txt\` and the logs. One search by hand against a running fleet:

\`\`\`sh
bin/loadtest --url http://127.0.0.1:18789 --search --rate 1000 --step-factor 1.25 \\
  --duration 8s --warmup 2s --turns 60 --sessions-per-rps 0.1 --markdown steps.md
\`\`\`
EOF
} >"$out"
say "wrote $out (fleet part $(awk -v a="$t_begin" -v b="$t_fleet" 'BEGIN {printf "%.0f", b - a}') s, total $elapsed s)"
