#!/usr/bin/env bash
# CPU profile of icsnare under one icsnare-load workload: profile.sh modbus|snmp|s7comm|http
# [DURATION]. Starts the default profile (as bench-ratio.sh does) with --cpuprofile, drives it,
# stops it and prints the top 15 functions (flat) and the top 15 cumulative; the profile is
# left in $OUTDIR (default /tmp) as icsnare-MODE.pprof.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: profile.sh modbus|snmp|s7comm|http [duration]}
dur=${2:-8s}
off=${PORT_OFFSET:-22000}
addr=${SENSOR_ADDR:-127.37.0.3}
outdir=${OUTDIR:-/tmp}
work=$(mktemp -d /tmp/icsnare-prof.XXXXXX)
pid=
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; fi; rm -rf "$work"' EXIT
printf '[limits]\nudp_bytes_per_source_per_minute = 0\nudp_bytes_per_port_per_minute = 0\n' > "$work/bench.toml"
./bin/icsnare profiles export default "$work/profile"
sed -i -e '/name="tarpit"/d' -e '/name="evasion"/d' "$work/profile/snmp/snmp.xml"
prof="$outdir/icsnare-$mode.pprof"
./bin/icsnare run --timing=false --config "$work/bench.toml" --profile "$work/profile" --listen "$addr" --port-offset "$off" \
  --events "$work/events.jsonl" --state "$work/state" --metrics off --user root --log-level warn --cpuprofile "$prof" &
pid=$!
case $mode in
  modbus) port=502 proto=t args="-mode modbus -unit 1 -quantity 10 -conns 16" ;;
  s7comm) port=102 proto=t args="-mode s7comm -quantity 10 -conns 16" ;;
  snmp) port=161 proto=u args="-mode snmp -conns 16" ;;
  http) port=80 proto=t args="-mode http -path /index.html -conns 32" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
for i in $(seq 100); do
  if ss -Hln "-$proto" "src $addr and sport = :$((port + off))" | grep -q .; then break; fi
  sleep 0.1
done
# shellcheck disable=SC2086
./bin/icsnare-load $args -duration "$dur" -warmup 1s -pid $pid -target "$addr:$((port + off))"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
kill $pid; wait $pid || true; pid=
go tool pprof -top -nodecount 15 ./bin/icsnare "$prof" 2>/dev/null
go tool pprof -top -cum -nodecount 15 ./bin/icsnare "$prof" 2>/dev/null | tail -n 16
