// Reads one host of the bacnet-controller profile with the npm client @bacnet-js/client, as
// a building-automation engineer's tool would, for the Go e2e test; prints one JSON line.
//
//   node bacnet_controller.js NODE_MODULES HOST CLIENT_ADDR CLIENT_PORT
'use strict';

const path = require('path');
const [modules, host, clientAddr, clientPort] = process.argv.slice(2);
const Bacnet = require(path.join(modules, '@bacnet-js', 'client')).default;

const client = new Bacnet({ port: Number(clientPort), interface: clientAddr, apduTimeout: 4000 });
const receiver = { address: host };
const out = { iAm: [], device: {}, objects: {}, errors: [] };

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function plain(values) {
  return values.map((v) => {
    const x = v.value;
    if (x && typeof x === 'object' && 'instance' in x) return `${x.type},${x.instance}`;
    if (x && typeof x === 'object' && 'bitsUsed' in x) return `bits:${x.bitsUsed}`;
    if (x && typeof x === 'object' && x.errorClass !== undefined) return `error:${x.errorClass}/${x.errorCode}`;
    if (x instanceof Date) return x.toISOString();
    return x;
  });
}

async function main() {
  await new Promise((resolve) => client.on('listening', resolve));
  const onIAm = (msg) => out.iAm.push({ address: msg.header.sender.address, deviceId: msg.payload.deviceId, maxApdu: msg.payload.maxApdu, segmentation: msg.payload.segmentation, vendorId: msg.payload.vendorId });
  client.on('iAm', onIAm);
  client.whoIs(receiver);
  await sleep(700);
  client.removeListener('iAm', onIAm);
  if (out.iAm.length !== 1) throw new Error(`Who-Is: ${out.iAm.length} I-Am`);
  const device = { type: 8, instance: out.iAm[0].deviceId };

  // Every property the device lists, one ReadProperty each (the object list whole).
  const plist = await client.readProperty(receiver, device, 371);
  for (const p of [75, 77, 79, ...plist.values.map((v) => v.value)]) {
    try {
      out.device[p] = plain((await client.readProperty(receiver, device, p)).values);
    } catch (e) {
      out.errors.push(`device property ${p}: ${e.message}`);
    }
  }

  // Every object of the object list: ReadPropertyMultiple ALL.
  for (const oid of out.device[76] || []) {
    const [type, instance] = oid.split(',').map(Number);
    try {
      const r = await client.readPropertyMultiple(receiver, [{ objectId: { type, instance }, properties: [{ id: 8 }] }]);
      const props = {};
      for (const v of r.values[0].values) props[v.id] = plain(v.value);
      out.objects[oid] = props;
    } catch (e) {
      out.errors.push(`object ${oid}: ${e.message}`);
    }
  }

  // An operator's write: the occupied setpoint, then the supply fan commanded off at
  // priority 8 (the priority array shows it, present-value follows).
  await client.writeProperty(receiver, { type: 2, instance: 2 }, 85, [{ type: 4, value: 22.5 }], { priority: 8 });
  out.setpoint = plain((await client.readProperty(receiver, { type: 2, instance: 2 }, 85)).values)[0];
  await client.writeProperty(receiver, { type: 4, instance: 1 }, 85, [{ type: 9, value: 0 }], { priority: 8 });
  out.fanCommand = plain((await client.readProperty(receiver, { type: 4, instance: 1 }, 85)).values)[0];
  // SubscribeCOV to the supply air temperature: acknowledged, then the initial notification.
  const notified = new Promise((resolve) => client.once('covNotifyUnconfirmed', (msg) => resolve(msg.payload)));
  await client.subscribeCov(receiver, { type: 0, instance: 1 }, 42, false, false, 300);
  const cov = await Promise.race([notified, sleep(2000).then(() => null)]);
  out.cov = cov && { process: cov.subscriberProcessId, device: `${cov.initiatingDeviceId.type},${cov.initiatingDeviceId.instance}`,
    object: `${cov.monitoredObjectId.type},${cov.monitoredObjectId.instance}`, values: cov.values.map((v) => [v.property.id, plain(v.value)[0]]) };

  // Password-checked services: a guessed password is refused.
  for (const [name, fn] of [['dcc', () => client.deviceCommunicationControl(receiver, 5, 1, { password: 'admin' })],
    ['reinitialize', () => client.reinitializeDevice(receiver, 1, { password: 'admin' })]]) {
    try { await fn(); out[name] = 'accepted'; } catch (e) { out[name] = e.message; }
  }
  out.fanPriority8 = plain((await client.readProperty(receiver, { type: 4, instance: 1 }, 87, { arrayIndex: 8 })).values)[0];
}

main()
  .then(() => { console.log(JSON.stringify(out)); client.close(); })
  .catch((e) => { out.error = String(e && e.stack || e); console.log(JSON.stringify(out)); client.close(); process.exitCode = 1; });
