#!/usr/bin/env bash
# Starts the sensor on loopback (high ports, events to a file) and drives it with
# icsnare-load: Modbus FC3 and SNMP v2c GET over 16 connections each. Bounded: DURATION per run.
# The SNMP run uses a copy of the default profile with its tarpit and evasion turned off,
# which would otherwise (by design) hold one source to 20 GETs a second.
set -euo pipefail
cd "$(dirname "$0")/.."
off=${PORT_OFFSET:-20000}
dur=${DURATION:-10s}
work=$(mktemp -d /tmp/icsnare-bench.XXXXXX)
./bin/icsnare profiles export default "$work/profile"
sed -i -e '/name="tarpit"/d' -e '/name="evasion"/d' "$work/profile/snmp/snmp.xml"
./bin/icsnare run --profile "$work/profile" --listen 127.0.0.1 --port-offset "$off" --events "$work/events.jsonl" \
  --metrics off --user root --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for i in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$((502 + off))) 2>/dev/null; then break; fi
  sleep 0.1
done
echo "== Modbus FC3 (10 registers), 16 connections"
./bin/icsnare-load -mode modbus -unit 1 -target 127.0.0.1:$((502 + off)) -conns 16 -duration "$dur" -pid $pid
echo "== SNMP v2c GET sysDescr.0, 16 sockets"
./bin/icsnare-load -mode snmp -target 127.0.0.1:$((161 + off)) -conns 16 -duration "$dur" -pid $pid
echo "events written: $(wc -l < "$work/events.jsonl")"
