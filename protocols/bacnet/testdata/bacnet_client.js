// Drives the npm client @bacnet-js/client against one BACnet/IP host for the Go tests and
// prints one JSON line with what it saw.
//
//   node bacnet_client.js NODE_MODULES HOST CLIENT_ADDR CLIENT_PORT
'use strict';

const path = require('path');
const [modules, host, clientAddr, clientPort] = process.argv.slice(2);
const Bacnet = require(path.join(modules, '@bacnet-js', 'client')).default;

const client = new Bacnet({ port: Number(clientPort), interface: clientAddr, apduTimeout: 4000 });
const receiver = { address: host };
const out = { iAm: [], iAmInRange: [], iAmOutOfRange: [], device: {}, deviceErrors: {}, rpm: {}, write: null, segmented: null, rpmAll: null };

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function collectIAm(options, into) {
  const seen = [];
  const onIAm = (msg) => seen.push({ address: msg.header.sender.address, deviceId: msg.payload.deviceId, maxApdu: msg.payload.maxApdu, segmentation: msg.payload.segmentation, vendorId: msg.payload.vendorId });
  client.on('iAm', onIAm);
  client.whoIs(receiver, options);
  await sleep(700);
  client.removeListener('iAm', onIAm);
  out[into] = seen;
}

function simplify(values) {
  return values.map((v) => {
    if (v.value && typeof v.value === 'object' && 'instance' in v.value) return { type: v.type, value: `${v.value.type},${v.value.instance}` };
    if (v.value && typeof v.value === 'object' && 'bitsUsed' in v.value) return { type: v.type, value: `bits:${v.value.bitsUsed}` };
    if (v.value && typeof v.value === 'object' && v.value.errorClass !== undefined) return { type: v.type, error: `${v.value.errorClass}/${v.value.errorCode}` };
    if (v.value instanceof Date) return { type: v.type, value: v.value.toISOString() };
    return { type: v.type, value: v.value };
  });
}

async function main() {
  await new Promise((resolve) => client.on('listening', resolve));
  await collectIAm(undefined, 'iAm');
  if (out.iAm.length !== 1) throw new Error(`Who-Is: ${out.iAm.length} I-Am`);
  const inst = out.iAm[0].deviceId;
  await collectIAm({ lowLimit: inst, highLimit: inst }, 'iAmInRange');
  await collectIAm({ lowLimit: inst + 1, highLimit: inst + 1000 }, 'iAmOutOfRange');
  const device = { type: 8, instance: inst };

  // Every device property the device lists, one ReadProperty each.
  const plist = await client.readProperty(receiver, device, 371);
  const props = [75, 77, 79, ...plist.values.map((v) => v.value)];
  for (const p of props) {
    try {
      const r = await client.readProperty(receiver, device, p);
      out.device[p] = simplify(r.values);
    } catch (e) {
      out.deviceErrors[p] = e.message;
    }
  }

  // ReadPropertyMultiple ALL on each object.
  const list = await client.readProperty(receiver, device, 76, { arrayIndex: 0 });
  const count = list.values[0].value;
  for (let i = 1; i <= count; i++) {
    const el = await client.readProperty(receiver, device, 76, { arrayIndex: i });
    const oid = el.values[0].value;
    const r = await client.readPropertyMultiple(receiver, [{ objectId: oid, properties: [{ id: 8 }] }]);
    out.rpm[`${oid.type},${oid.instance}`] = r.values[0].values.map((v) => ({ id: v.id, value: simplify(v.value) }));
  }

  // WriteProperty, then read it back (an analog value, REAL).
  await client.writeProperty(receiver, { type: 2, instance: 2 }, 85, [{ type: 4, value: 21.5 }], { priority: 8 });
  const back = await client.readProperty(receiver, { type: 2, instance: 2 }, 85);
  out.write = back.values[0].value;
  try {
    await client.writeProperty(receiver, device, 121, [{ type: 7, value: 'x' }], {});
    out.writeDenied = 'accepted';
  } catch (e) {
    out.writeDenied = e.message;
  }

  // Password-protected services are refused.
  const refused = async (name, fn) => {
    try { await fn(); out.refused[name] = 'accepted'; } catch (e) { out.refused[name] = e.message; }
  };
  out.refused = {};
  await refused('dcc', () => client.deviceCommunicationControl(receiver, 5, 1, { password: 'admin' }));
  await refused('reinitialize', () => client.reinitializeDevice(receiver, 1, { password: 'admin' }));
  // SubscribeCOV: acknowledged, then the initial notification (present-value, status-flags).
  const notified = new Promise((resolve) => client.once('covNotifyUnconfirmed', (msg) => resolve(msg.payload)));
  await refused('subscribeCov', () => client.subscribeCov(receiver, { type: 0, instance: 1 }, 7, false, false, 60));
  const cov = await Promise.race([notified, sleep(2000).then(() => null)]);
  out.cov = cov && { process: cov.subscriberProcessId, object: `${cov.monitoredObjectId.type},${cov.monitoredObjectId.instance}`, timeRemaining: cov.timeRemaining, values: cov.values.map((v) => v.property.id) };
  // A change after the subscription comes as a later notification (sent by the device on
  // its own, through the sensor).
  const av = { type: 2, instance: 2 };
  const changes = [];
  const onChange = (msg) => { if (msg.payload.subscriberProcessId === 8) changes.push(msg.payload.values[0].value[0].value); };
  client.on('covNotifyUnconfirmed', onChange);
  await client.subscribeCov(receiver, av, 8, false, false, 60);
  await client.writeProperty(receiver, av, 85, [{ type: 4, value: 30 }], { priority: 8 });
  for (let i = 0; i < 40 && changes.length < 2; i++) await sleep(100);
  client.removeListener('covNotifyUnconfirmed', onChange);
  out.covChanges = changes;
  await refused('unknownObject', () => client.readProperty(receiver, { type: 5, instance: 77 }, 85));
  // A time synchronisation is accepted silently and moves the device's clock.
  client.timeSyncUTC(receiver, new Date(Date.UTC(2031, 4, 17, 10, 20, 30)));
  await sleep(300);
  const date = await client.readProperty(receiver, device, 56);
  out.dateAfterSync = date.values[0].value.toISOString();

  // The object list in 480-octet segments, and every object's ALL in one segmented answer.
  const seg = await client.readProperty(receiver, device, 76, { maxApdu: 3 });
  out.segmented = seg.values.map((v) => `${v.value.type},${v.value.instance}`);
  const specs = out.segmented.map((s) => { const [type, instance] = s.split(',').map(Number); return { objectId: { type, instance }, properties: [{ id: 8 }] }; });
  const all = await client.readPropertyMultiple(receiver, specs);
  out.rpmAll = all.values.length;
}

main()
  .then(() => { console.log(JSON.stringify(out)); client.close(); })
  .catch((e) => { out.error = String(e && e.stack || e); console.log(JSON.stringify(out)); client.close(); process.exitCode = 1; });
