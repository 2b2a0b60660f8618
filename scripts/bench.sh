#!/usr/bin/env bash
# Starts the sensor on loopback (high ports, events to a file) and drives it with
# icsnare-load: Modbus FC3 and SNMP v2c GET over 16 connections each. Bounded: 10 s per run.
set -euo pipefail
cd "$(dirname "$0")/.."
off=${PORT_OFFSET:-20000}
dur=${DURATION:-10s}
events=$(mktemp /tmp/icsnare-bench-events.XXXXXX)
./bin/icsnare run --listen 127.0.0.1 --port-offset "$off" --events "$events" --metrics off --user root --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$events"' EXIT
for i in $(seq 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/$((502 + off))) 2>/dev/null; then break; fi
  sleep 0.1
done
echo "== Modbus FC3, 16 connections"
./bin/icsnare-load -mode modbus -target 127.0.0.1:$((502 + off)) -conns 16 -duration "$dur" -pid $pid
if grep -q . <(./bin/icsnare check --listen 127.0.0.1 | grep 'snmp udp/161' || true); then
  echo "== SNMP v2c GET sysDescr.0, 16 sockets"
  ./bin/icsnare-load -mode snmp -target 127.0.0.1:$((161 + off)) -conns 16 -duration "$dur" -pid $pid
fi
echo "events written: $(wc -l < "$events")"
