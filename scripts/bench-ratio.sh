#!/usr/bin/env bash
# Ratio bench: icsnare and icsnare-ceiling (bare Go servers doing the same I/O and nothing
# else) run side by side on two loopback addresses, and icsnare-load drives each in
# alternating rounds (ROUNDS of DURATION after WARMUP, the order swapped every round) for
# Modbus FC3, s7comm Read Var, SNMP v2c GET and HTTP GET (the default profile; HTTP also with
# wrk, 2 threads and 32 connections, as fast as answered whatever RATE says) and BACnet
# ReadProperty (a second sensor with the BACnet controller test profile, its `confirmed`
# rate class off). Each run's requests/s and requests
# per server CPU-second go to $OUT.jsonl; the summary (min/median/max over the rounds of each
# figure and of icsnare/ceiling, with the load average) is printed and written to $OUT.
# icsnare runs the default profile with events on (to a file, default volume control); SNMP
# with its tarpit and evasion removed and the UDP answer byte budgets lifted, as in bench.sh.
# With BASELINE set to a directory holding another build's icsnare (main's, say), that
# build runs too, on BASELINE_ADDR, in the same rounds: its runs are labelled
# "<workload>@baseline" and compared with the same ceiling runs, for a before/after in one run.
# With RATE set (requests/s) every run offers that load instead of answering as fast as the
# server can (HTTP offers HTTP_RATE, default RATE/8): both servers then see the same
# client, and the CPU per request of each is measured at the same operating point, which
# varies far less between rounds than a saturated run does.
# With PIN=1 (and at least two CPUs) every server runs on the last CPU and the load generator
# on the others (taskset), so the two never compete for a core: the spread between rounds
# narrows, and each server's Go runtime then has one P (GOMAXPROCS follows the CPU mask).
# WORKLOADS (labels, space-separated; default all) runs only those workloads.
# With CONCURRENT=1 each round drives icsnare and the ceiling (and the baseline) at the same
# time, each with its own icsnare-load at the same offered RATE (which it then needs): what
# else runs on the box then weighs on both alike, so the rounds' ratios spread far less than
# in alternating rounds, at the price of the servers sharing the CPUs with each other.
set -euo pipefail
cd "$(dirname "$0")/.."
off=${PORT_OFFSET:-21000}
boff=${BACNET_PORT_OFFSET:-1000} # BACnet's 47808 leaves less room
dur=${DURATION:-2s}
warm=${WARMUP:-500ms}
rounds=${ROUNDS:-9}
sensor=${SENSOR_ADDR:-127.37.0.1}
ceil=${CEILING_ADDR:-127.37.0.2}
out=${OUT:-bench.json}
base=${BASELINE:-}
baddr=${BASELINE_ADDR:-127.37.0.3}
rate=${RATE:-0}
concurrent=${CONCURRENT:-0} order="alternating which server goes first"
if [ "$concurrent" = 1 ] && [ "$rate" = 0 ]; then
  echo "CONCURRENT=1 needs RATE (requests/s offered to each server)" >&2
  exit 2
fi
if [ "$concurrent" = 1 ]; then order="with the servers driven at the same time"; fi
http_rate=${HTTP_RATE:-$((rate / 8))}
srvpin=() loadpin=()
if [ "${PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  last=$(($(nproc) - 1))
  srvpin=(taskset -c "$last") loadpin=(taskset -c "0-$((last - 1))")
fi
work=$(mktemp -d /tmp/icsnare-ratio.XXXXXX)
spid= cpid= bpid= xpid= xbpid=
trap 'for p in $spid $cpid $bpid $xpid $xbpid; do kill $p 2>/dev/null || true; wait $p 2>/dev/null || true; done; rm -rf "$work"' EXIT

waitport() { # PROTO PORT ADDR
  for i in $(seq 100); do
    if ss -Hln "-${1:0:1}" "src $3 and sport = :$2" | grep -q .; then return; fi
    sleep 0.1
  done
  echo "nothing bound $1 $3:$2" >&2
  return 1
}

printf '[limits]\nudp_bytes_per_source_per_minute = 0\nudp_bytes_per_port_per_minute = 0\n' > "$work/bench.toml"
./bin/icsnare profiles export default "$work/profile"
sed -i -e '/name="tarpit"/d' -e '/name="evasion"/d' "$work/profile/snmp/snmp.xml"
"${srvpin[@]}" ./bin/icsnare run --timing=false --config "$work/bench.toml" --profile "$work/profile" --listen "$sensor" --port-offset "$off" \
  --events "$work/events.jsonl" --state "$work/state" --metrics off --user root --log-level warn &
spid=$!
cp -r protocols/bacnet/testdata/controller "$work/bacnet"
sed -i 's|</bacnet>|    <rate_limit class="confirmed">0;0</rate_limit>\n</bacnet>|' "$work/bacnet/bacnet/bacnet.xml"
"${srvpin[@]}" ./bin/icsnare run --timing=false --config "$work/bench.toml" --profile "$work/bacnet" --listen "$sensor" --port-offset "$boff" \
  --events "$work/events-bacnet.jsonl" --state "$work/state-bacnet" --metrics off --user root --log-level warn &
bpid=$!
if [ -n "$base" ]; then
  "${srvpin[@]}" "$base/icsnare" run --timing=false --config "$work/bench.toml" --profile "$work/profile" --listen "$baddr" --port-offset "$off" \
    --events "$work/events-base.jsonl" --state "$work/state-base" --metrics off --user root --log-level warn &
  xpid=$!
  "${srvpin[@]}" "$base/icsnare" run --timing=false --config "$work/bench.toml" --profile "$work/bacnet" --listen "$baddr" --port-offset "$boff" \
    --events "$work/events-base-bacnet.jsonl" --state "$work/state-base-bacnet" --metrics off --user root --log-level warn &
  xbpid=$!
  for p in tcp:502 tcp:102 udp:161 tcp:80; do waitport "${p%%:*}" $((${p#*:} + off)) "$baddr"; done
  waitport udp $((47808 + boff)) "$baddr"
  echo "baseline $base/icsnare pid $xpid (BACnet: $xbpid) on $baddr"
fi
for p in tcp:502 tcp:102 udp:161 tcp:80; do waitport "${p%%:*}" $((${p#*:} + off)) "$sensor"; done
waitport udp $((47808 + boff)) "$sensor"
curl -s -o "$work/body" -D "$work/headers" "http://$sensor:$((80 + off))/index.html"
"${srvpin[@]}" ./bin/icsnare-ceiling -addr "$ceil" -modbus $((502 + off)) -s7comm $((102 + off)) -snmp $((161 + off)) \
  -bacnet $((47808 + boff)) -http $((80 + off)) -http-body "$work/body" -http-headers "$work/headers" &
cpid=$!
for p in tcp:502 tcp:102 udp:161 tcp:80; do waitport "${p%%:*}" $((${p#*:} + off)) "$ceil"; done
waitport udp $((47808 + boff)) "$ceil"
echo "icsnare pid $spid (BACnet: $bpid) on $sensor, ceiling pid $cpid on $ceil; $(nproc) CPUs; offered load ${rate/#0/as fast as answered} (HTTP ${http_rate/#0/as fast as answered}) req/s${srvpin[*]:+, servers pinned (${srvpin[*]}), load generator ${loadpin[*]}}; $rounds rounds, $order; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# one LABEL SERVER ROUND PORT ARGS…: one measured run (PORT with its offset). Its record
# goes to a file of its own first, so that runs at the same time (CONCURRENT) append whole
# lines, and the baseline is compared with the ceiling run of its round.
one() {
  local label=$1 server=$2 round=$3 port=$4 addr=$sensor pid=$spid who=$2
  shift 4
  if [ "$port" = $((47808 + boff)) ]; then pid=$bpid; fi
  if [ "$server" = ceiling ]; then addr=$ceil pid=$cpid; fi
  if [ "$server" = baseline ]; then
    addr=$baddr pid=$xpid label=$label@baseline server=icsnare
    if [ "$port" = $((47808 + boff)) ]; then pid=$xbpid; fi
  fi
  local r=$rate rec="$work/run.$who.$round.jsonl"
  if [ "${label%@baseline}" = http-get ]; then r=$http_rate; fi
  rm -f "$rec"
  local load=(./bin/icsnare-load -rate "$r")
  if [ "${1:-}" = wrk ]; then # wrk: closed loop, always
    shift
    load=(./bin/icsnare-load wrk)
  fi
  "${loadpin[@]}" "${load[@]}" -duration "$dur" -warmup "$warm" -pid "$pid" -target "$addr:$port" \
    -json "$rec" -label "$label" -server "$server" -round "$round" "$@" | sed "s/^/  $who r$round: /" ||
    { echo "run failed: $label $who round $round"; : > "$work/failed"; }
  if [ -f "$rec" ]; then
    cat "$rec" >> "$work/runs.jsonl"
    if [ "$server" = ceiling ] && [ -n "$base" ]; then # the baseline is compared with the same ceiling run
      sed "s/\"label\":\"$label\"/\"label\":\"$label@baseline\"/" "$rec" >> "$work/runs.jsonl"
    fi
  fi
}
# workload LABEL PORT ARGS…: ROUNDS rounds, alternating which server goes first, or with
# CONCURRENT=1 every server driven at the same time.
workload() {
  local label=$1 port=$2
  shift 2
  if [ -n "${WORKLOADS:-}" ] && [[ " $WORKLOADS " != *" $label "* ]]; then return; fi
  echo "== $label ($*)"
  for r in $(seq "$rounds"); do
    if [ "$concurrent" = 1 ]; then
      local servers=(icsnare ceiling) pids=()
      if [ -n "$base" ]; then servers+=(baseline); fi
      for s in "${servers[@]}"; do
        one "$label" "$s" "$r" "$port" "$@" > "$work/out.$s" &
        pids+=($!)
      done
      wait "${pids[@]}"
      for s in "${servers[@]}"; do cat "$work/out.$s"; done
    elif [ $((r % 2)) = 1 ]; then
      one "$label" icsnare "$r" "$port" "$@"
      if [ -n "$base" ]; then one "$label" baseline "$r" "$port" "$@"; fi
      one "$label" ceiling "$r" "$port" "$@"
    else
      one "$label" ceiling "$r" "$port" "$@"
      if [ -n "$base" ]; then one "$label" baseline "$r" "$port" "$@"; fi
      one "$label" icsnare "$r" "$port" "$@"
    fi
  done
}
workload modbus-fc3 $((502 + off)) -mode modbus -unit 1 -quantity 10 -conns 16
workload s7comm-read $((102 + off)) -mode s7comm -quantity 10 -conns 16
workload snmp-get $((161 + off)) -mode snmp -conns 16
workload http-get $((80 + off)) -mode http -path /index.html -conns 32
workload http-wrk $((80 + off)) wrk -path /index.html -threads 2 -conns 32
workload bacnet-read $((47808 + boff)) -mode bacnet -property 77 -conns 16
echo "events written by icsnare: $(cat "$work"/events*.jsonl | wc -l)"
echo
./bin/icsnare-load summarize -out "$out" "$work/runs.jsonl"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the box is shared; the ratios come from $rounds rounds, $order)"
echo "wrote $out"
if [ -e "$work/failed" ]; then exit 1; fi
