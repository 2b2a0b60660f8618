// Drives the npm st-ethernet-ip client against an EtherNet/IP server on port 44818:
// register a session, Forward Open, read the Identity object and the tag list, read and
// write tags, with connected and with unconnected messaging. Prints one JSON line.
// usage: node stenip.js NODE_MODULES HOST
const path = require("path");
const { Controller, Tag } = require(path.join(process.argv[2], "st-ethernet-ip"));
const host = process.argv[3];

async function session(connected) {
  const plc = new Controller(connected);
  await plc.connect(host, 0);
  const p = plc.properties;
  const speed = new Tag("Speed");
  const level = new Tag("Level");
  await plc.readTag(speed);
  await plc.readTag(level);
  const before = speed.value;
  await plc.writeTag(speed, connected ? 1234 : 4321);
  await plc.readTag(speed);
  const tags = plc.tagList.map((t) => t.name);
  await plc.disconnect();
  return { name: p.name, serial: p.serial_number, version: p.version, run: p.run, faulted: p.faulted,
    tags, before, level: level.value, after: speed.value };
}

(async () => {
  try {
    const connected = await session(true);
    const unconnected = await session(false);
    console.log(JSON.stringify({ connected, unconnected }));
    process.exit(0);
  } catch (e) {
    console.log(JSON.stringify({ error: String(e && (e.message || e)) }));
    process.exit(1);
  }
})();
