#!/usr/bin/env bash
# Starts the sensor on loopback (high ports, events to a file) and drives it with
# icsnare-load: Modbus FC3 and SNMP v2c GET over 16 connections each against the default
# profile; then, one freshly started sensor each, EtherNet/IP ListIdentity (UDP and TCP)
# and Read Tag, IEC 60870-5-104 station interrogation, and IPMI RMCP+ session set-ups and
# Get Chassis Status, against the protocols' test profiles. Bounded: DURATION per run.
# The SNMP run uses a copy of the default profile with its tarpit and evasion turned off,
# which would otherwise (by design) hold one source to 20 GETs a second; the IPMI runs a
# copy of the bmc test profile with its handshake rate class lifted (by default 300 Open
# Session and RAKP messages a minute per source). Every sensor runs with the UDP answer byte
# budgets lifted (by default 1 MiB a minute per source, which one loopback source exhausts
# within the warm-up, after which every UDP request times out).
set -euo pipefail
cd "$(dirname "$0")/.."
off=${PORT_OFFSET:-20000}
dur=${DURATION:-10s}
addr=${BENCH_ADDR:-127.0.0.1}
work=$(mktemp -d /tmp/icsnare-bench.XXXXXX)
pid=
printf '[limits]\nudp_bytes_per_source_per_minute = 0\nudp_bytes_per_port_per_minute = 0\n' > "$work/bench.toml"
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null; wait $pid 2>/dev/null; fi; rm -rf "$work"' EXIT

# start PROFILE NAME PROTO PORT: a sensor serving PROFILE on $addr, waiting until PORT
# (tcp or udp, offset included) is bound; its events go to $work/NAME.jsonl.
start() {
  ./bin/icsnare run --timing=false --config "$work/bench.toml" --profile "$1" --listen "$addr" --port-offset "$off" --events "$work/$2.jsonl" \
    --state "$work/state-$2" --metrics off --user root --log-level warn &
  pid=$!
  for i in $(seq 100); do
    if ss -Hln "-${3:0:1}" "sport = :$4" | grep -q .; then return; fi
    sleep 0.1
  done
  echo "sensor for $2 did not bind $3/$4" >&2
  return 1
}
# stop NAME: stop the running sensor and count its events.
stop() {
  kill $pid
  wait $pid || true
  pid=
  echo "events written: $(wc -l < "$work/$1.jsonl")"
}
# load ARGS: one icsnare-load run against the running sensor; a failed run is reported and
# makes the script fail at the end, after the other runs.
failed=0
load() { ./bin/icsnare-load -duration "$dur" -pid $pid "$@" || { echo "run failed: $*"; failed=1; }; }

./bin/icsnare profiles export default "$work/profile"
sed -i -e '/name="tarpit"/d' -e '/name="evasion"/d' "$work/profile/snmp/snmp.xml"
start "$work/profile" default tcp $((502 + off))
echo "== Modbus FC3 (10 registers), 16 connections"
load -mode modbus -unit 1 -target "$addr:$((502 + off))" -conns 16
echo "== SNMP v2c GET sysDescr.0, 16 sockets"
load -mode snmp -target "$addr:$((161 + off))" -conns 16
stop default

enip=$((44818 + off))
start protocols/enip/testdata/default enip tcp $enip
echo "== EtherNet/IP ListIdentity over UDP, 16 sockets"
load -mode enip-identity -target "$addr:$enip" -conns 16
echo "== EtherNet/IP ListIdentity over TCP, 16 connections"
load -mode enip-identity -transport tcp -target "$addr:$enip" -conns 16
echo "== EtherNet/IP Read Tag SCADA (SINT), unconnected, 16 sessions"
load -mode enip-readtag -tag SCADA -target "$addr:$enip" -conns 16
stop enip

start protocols/iec104/testdata/IEC104 iec104 tcp $((2404 + off))
echo "== IEC 60870-5-104 station interrogation (every point, to act term), 8 connections"
load -mode iec104-gi -target "$addr:$((2404 + off))" -conns 8
stop iec104

cp -r protocols/ipmi/testdata/bmc "$work/bmc"
sed -i 's|</ipmi>|    <rate_limit class="handshake">0;0</rate_limit>\n</ipmi>|' "$work/bmc/ipmi/ipmi.xml"
start "$work/bmc" ipmi udp $((623 + off))
echo "== IPMI RMCP+ session set-up (suite 3: open session, RAKP 1-4, close), 8 sockets"
load -mode ipmi-session -target "$addr:$((623 + off))" -conns 8
echo "== IPMI Get Chassis Status in a suite 3 session, 8 sockets"
load -mode ipmi-chassis -target "$addr:$((623 + off))" -conns 8
stop ipmi
exit $failed
