package bacnet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func TestWhoIsIAm(t *testing.T) {
	sv, h := testService(t, "conpot")
	f := newFlow(t, sv, h)
	check := func(m message) {
		t.Helper()
		a := m.apdu
		if a.typ != pduUnconfirmed || a.service != svcIAm {
			t.Fatalf("answer %+v", a)
		}
		vals, err := decodeValues(a.data)
		if err != nil || len(vals) != 4 {
			t.Fatalf("I-Am values %v: %v", vals, err)
		}
		if vals[0].oid != (objectID{objDevice, 36113}) || vals[1].u != 1024 || vals[2].u != segBoth || vals[3].u != 15 {
			t.Fatalf("I-Am %+v", vals)
		}
	}
	check(f.ask1(broadcastFrame(whoIs(-1, 0))))
	check(f.ask1(unicast(whoIs(36000, 37000))))
	check(f.ask1(unicast(whoIs(36113, 36113))))
	for _, r := range [][2]int64{{0, 36112}, {36114, 4194303}} {
		if out := f.ask(unicast(whoIs(r[0], r[1]))); len(out) != 0 {
			t.Fatalf("Who-Is %v answered %x", r, out)
		}
	}
	// Only a low limit is malformed: silence.
	if out := f.ask(unicast(appendCtxUnsigned([]byte{0x10, 0x08}, 0, 1))); len(out) != 0 {
		t.Fatalf("Who-Is with a low limit only answered %x", out)
	}
	// Broadcast through the spine's fan-out: answered like a unicast one.
	var out [][]byte
	sv.ServeBroadcast(t.Context(), f.s, netip.MustParseAddr("127.50.0.255"), broadcastFrame(whoIs(-1, 0)), func(b []byte) { out = append(out, b) })
	if len(out) != 1 {
		t.Fatalf("broadcast Who-Is: %d answers", len(out))
	}
	// A confirmed request to a broadcast address is not answered.
	out = nil
	sv.ServeBroadcast(t.Context(), f.s, netip.MustParseAddr("127.50.0.255"), unicast(confirmedReq(1, svcReadProperty, 5, rpData(testDevice, propObjectName, -1))), func(b []byte) { out = append(out, b) })
	if len(out) != 0 {
		t.Fatal("broadcast ReadProperty answered")
	}
}

// TestNmapBacnetInfoBytes replays nmap's bacnet-info requests and checks the answers at the
// offsets the script reads.
func TestNmapBacnetInfoBytes(t *testing.T) {
	sv, h := testService(t, "conpot")
	f := newFlow(t, sv, h)
	name, _ := h.Databus.GetString("SystemName")
	for _, tc := range []struct {
		prop byte
		want string
	}{
		{0x4b, ""}, {0x78, ""}, {0x79, "Alerton Technologies, Inc."}, {0x46, "VAV-DD Controller"}, {0x4d, name},
		{0x2c, ""}, {0x0c, ""},
	} {
		req := unhex(t, "810a001101040005010c0c023fffff19"+fmt.Sprintf("%02x", tc.prop))
		out := f.ask(req)
		if len(out) != 1 {
			t.Fatalf("property %#x: %d answers", tc.prop, len(out))
		}
		r := out[0]
		if r[0] != 0x81 || r[6] != 0x30 {
			t.Fatalf("property %#x: answer %x is not a ComplexACK at byte 7", tc.prop, r)
		}
		switch tc.prop {
		case 0x4b:
			if inst := uint32(r[19])<<16 | uint32(r[20])<<8 | uint32(r[21]); inst != 36113 || r[17] != 0xc4 {
				t.Fatalf("object identifier answer %x", r)
			}
		case 0x78:
			if r[17] != 0x21 || r[18] != 15 {
				t.Fatalf("vendor id answer %x", r)
			}
		default:
			l := int(r[17]&7) - 1
			off := 18
			if r[17]&7 == 5 {
				l, off = int(r[18])-1, 19
			}
			if r[off] != 0 {
				t.Fatalf("charset %d", r[off])
			}
			got := string(r[off+1 : off+1+l])
			if tc.want != "" && got != tc.want {
				t.Fatalf("property %#x: %q, want %q", tc.prop, got, tc.want)
			}
			if got == "" {
				t.Fatalf("property %#x is empty", tc.prop)
			}
		}
	}
}

func TestReadEveryDeviceProperty(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	st := sv.state(h)
	for _, p := range allProperties(sv.cfg.device) {
		vals, m := f.readValue(objectID{objDevice, st.instance}, p, -1)
		if m.apdu.typ != pduComplexACK {
			t.Fatalf("property %d: answer type %d (%d/%d)", p, m.apdu.typ, m.apdu.errorClass, m.apdu.errorCode)
		}
		if p != propDeviceAddressBinding && len(vals) == 0 {
			t.Fatalf("property %d: no value", p)
		}
	}
	if v := f.readOne(testDevice, propObjectIdentifier); v.oid != (objectID{objDevice, st.instance}) {
		t.Fatalf("object identifier %v", v.oid)
	}
	loc, _ := h.Databus.GetString("SiteLocation")
	for p, want := range map[uint32]string{propModelName: "EX-BC 200", propFirmwareRevision: "4.2.1", propLocation: loc,
		propDescription: "Air handling unit 1", propApplicationSoftware: "AHU sequence 2.3", propVendorName: "Example Controls"} {
		if v := f.readOne(testDevice, p); v.s != want {
			t.Errorf("property %d: %q, want %q", p, v.s, want)
		}
	}
	// object-list: whole, size, one element, beyond.
	vals, _ := f.readValue(testDevice, propObjectList, -1)
	if len(vals) != 6 || vals[0].oid.typ != objDevice || vals[2].oid != (objectID{objAnalogValue, 2}) {
		t.Fatalf("object-list %+v", vals)
	}
	if v, _ := f.readValue(testDevice, propObjectList, 0); len(v) != 1 || v[0].u != 6 {
		t.Fatalf("object-list[0] %+v", v)
	}
	if v, _ := f.readValue(testDevice, propObjectList, 5); len(v) != 1 || v[0].oid != (objectID{objBinaryOutput, 4}) {
		t.Fatalf("object-list[5] %+v", v)
	}
	_, m := f.readValue(testDevice, propObjectList, 7)
	if m.apdu.typ != pduError || m.apdu.errorCode != errCodeInvalidArrayIndex {
		t.Fatalf("object-list[7]: %+v", m.apdu)
	}
	_, m = f.readValue(testDevice, propModelName, 1)
	if m.apdu.typ != pduError || m.apdu.errorCode != errCodePropertyNotArray {
		t.Fatalf("model-name[1]: %+v", m.apdu)
	}
	// Services and object types supported match what is implemented.
	v := f.readOne(testDevice, propProtocolServices)
	if len(v.bits) != 7 || v.bits[0] != 7 || v.bits[2]&0x0a != 0x0a { // readProperty (12), readPropertyMultiple (14)
		t.Fatalf("services supported %x", v.bits)
	}
	v = f.readOne(testDevice, propProtocolObjectTypes)
	if v.bits[1] != 0xe8 || v.bits[2] != 0x80 || v.bits[3] != 0x10 { // AI, AO, AV, BO; device, MSV (19)
		t.Fatalf("object types supported %x", v.bits)
	}
}

func TestReadErrors(t *testing.T) {
	sv, h := testService(t, "conpot")
	f := newFlow(t, sv, h)
	for _, tc := range []struct {
		name        string
		req         []byte
		typ         byte
		class, code uint32
		reason      byte
	}{
		{"unknown object", rpData(objectID{objAnalogInput, 99}, propPresentValue, -1), pduError, errClassObject, errCodeUnknownObject, 0},
		{"other device", rpData(objectID{objDevice, 1}, propObjectName, -1), pduError, errClassObject, errCodeUnknownObject, 0},
		{"unknown property", rpData(objectID{objBinaryInput, 12}, propUnits, -1), pduError, errClassProperty, errCodeUnknownProperty, 0},
		{"ALL in ReadProperty", rpData(testDevice, propAll, -1), pduError, errClassProperty, errCodeUnknownProperty, 0},
		{"missing property", appendCtxObjectID(nil, 0, testDevice), pduReject, 0, 0, rejectMissingParameter},
		{"wrong tag", appendCtxUnsigned(nil, 1, 77), pduReject, 0, 0, rejectInvalidTag},
		{"extra argument", append(rpData(testDevice, propObjectName, -1), 0x49, 0x01), pduReject, 0, 0, rejectTooManyArguments},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := f.ask1(unicast(confirmedReq(9, svcReadProperty, 5, tc.req)))
			a := m.apdu
			if a.typ != tc.typ || a.invokeID != 9 || a.errorClass != tc.class || a.errorCode != tc.code || a.reason != tc.reason {
				t.Fatalf("answer %+v", a)
			}
		})
	}
	for _, svc := range []byte{0, 26, 28, 200} {
		m := f.ask1(unicast(confirmedReq(3, svc, 5, nil)))
		if m.apdu.typ != pduReject || m.apdu.reason != rejectUnrecognizedService {
			t.Fatalf("service %d: %+v", svc, m.apdu)
		}
	}
	// Password-protected services are refused, and the password is recorded.
	pw := appendTagHeader(nil, 2, true, 7)
	pw = append(append(pw, 0), "secret"...)
	dcc := append(appendCtxUnsigned(nil, 1, 1), pw...)
	m := f.ask1(unicast(confirmedReq(5, svcDeviceCommControl, 5, dcc)))
	if m.apdu.typ != pduError || m.apdu.errorClass != errClassSecurity || m.apdu.errorCode != errCodePasswordFailure {
		t.Fatalf("DCC: %+v", m.apdu)
	}
	ev := f.rec.Events()
	last := ev[len(ev)-1]
	found := false
	for _, fl := range last.Fields {
		if fl.Key == "password" && fl.Value == "secret" {
			found = true
		}
	}
	if !found {
		t.Fatalf("DCC event fields %+v", last.Fields)
	}
	m = f.ask1(unicast(confirmedReq(6, svcReinitializeDevice, 5, appendCtxUnsigned(nil, 0, 0))))
	if m.apdu.typ != pduError || m.apdu.errorCode != errCodePasswordFailure {
		t.Fatalf("reinitialize: %+v", m.apdu)
	}
	// ACKs, errors and other PDUs a server receives get no answer.
	for _, req := range [][]byte{appendSimpleACK(nil, 1, 15), appendErrorPDU(nil, 1, 12, 1, 31), appendReject(nil, 1, 1), {0x10, 0x00}, {0x10, 0x01}} {
		if out := f.ask(unicast(req)); len(out) != 0 {
			t.Fatalf("%x answered %x", req, out)
		}
	}
}

func TestBVLCAndNetworkLayer(t *testing.T) {
	sv, h := testService(t, "conpot")
	f := newFlow(t, sv, h)
	// BBMD functions get the NAK of a device that is not a BBMD.
	for fn, code := range nakFor {
		req := appendBVLC(nil, fn, 2)
		req = append(req, 0, 60)
		out := f.ask(req)
		if len(out) != 1 || !bytes.Equal(out[0], bvlcResultFrame(code)) {
			t.Fatalf("BVLC function %#x answered %x", fn, out)
		}
	}
	for _, in := range []string{
		"810b0007018000",               // Who-Is-Router-To-Network
		"810a000e01240007020102ff1008", // Who-Is for network 7
		"810600040000",                 // BVLC-Result received
		"0c023fffff",                   // a bare APDU (what Conpot expected)
		"810a000a0104",                 // length mismatch
	} {
		if out := f.ask(unhex(t, in)); len(out) != 0 {
			t.Fatalf("%s answered %x", in, out)
		}
	}
	// A request through a router is answered back through it.
	out := f.ask(unhex(t, "810a0017010c000503aabbcc0005010c0c023fffff194b"))
	if len(out) != 1 || !bytes.HasPrefix(out[0][4:], unhex(t, "01200005 03aabbcc ff 30 01 0c")) {
		t.Fatalf("routed answer %x", out)
	}
	// A malformed confirmed request is rejected.
	m := f.ask1(unicast([]byte{0x00, 0x05, 0x44, svcReadProperty, 0x0c, 0x02}))
	if m.apdu.typ != pduReject || m.apdu.invokeID != 0x44 {
		t.Fatalf("malformed: %+v", m.apdu)
	}
}

func TestReadPropertyMultiple(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	objs := []objectID{testDevice}
	specs := map[objectID][]uint32{testDevice: {propAll}}
	for _, o := range sv.cfg.objects {
		objs = append(objs, o.id)
		specs[o.id] = []uint32{propAll}
	}
	unknown := objectID{objBinaryValue, 77}
	objs = append(objs, unknown)
	specs[unknown] = []uint32{propAll}
	m := f.ask1(unicast(confirmedReq(4, svcReadPropertyMultiple, 5, rpmData(specs, objs))))
	if m.apdu.typ != pduComplexACK {
		t.Fatalf("answer %+v", m.apdu)
	}
	res := parseRPMAck(t, m.apdu.data)
	if len(res) != len(objs) {
		t.Fatalf("%d results, want %d", len(res), len(objs))
	}
	for i, o := range objs {
		got := res[i]
		if o == unknown {
			if len(got.errs) != 1 || got.errs[propAll] != errCodeUnknownObject {
				t.Fatalf("unknown object: %+v", got)
			}
			continue
		}
		oc := sv.cfg.byID[o]
		if o == testDevice {
			oc = sv.cfg.device
		}
		if len(got.errs) != 0 || len(got.props) != len(allProperties(oc)) {
			t.Fatalf("%s: %d properties, %d errors, want %d", o, len(got.props), len(got.errs), len(allProperties(oc)))
		}
	}
	// REQUIRED and OPTIONAL split ALL.
	m = f.ask1(unicast(confirmedReq(5, svcReadPropertyMultiple, 5, rpmData(map[objectID][]uint32{testDevice: {propRequired, propOptional}}, []objectID{testDevice}))))
	res = parseRPMAck(t, m.apdu.data)
	if len(res[0].props) != len(allProperties(sv.cfg.device)) {
		t.Fatalf("REQUIRED+OPTIONAL %d properties, ALL %d", len(res[0].props), len(allProperties(sv.cfg.device)))
	}
	// A property the object lacks is an error inside the ACK.
	m = f.ask1(unicast(confirmedReq(6, svcReadPropertyMultiple, 5, rpmData(map[objectID][]uint32{{objAnalogInput, 1}: {propPresentValue, propPolarity}}, []objectID{{objAnalogInput, 1}}))))
	res = parseRPMAck(t, m.apdu.data)
	if len(res[0].props) != 1 || res[0].errs[propPolarity] != errCodeUnknownProperty {
		t.Fatalf("%+v", res[0])
	}
	// Empty and malformed requests are rejected.
	for _, data := range [][]byte{nil, appendCtxObjectID(nil, 0, testDevice), append(appendOpen(appendCtxObjectID(nil, 0, testDevice), 1), appendClose(nil, 1)...)} {
		m = f.ask1(unicast(confirmedReq(7, svcReadPropertyMultiple, 5, data)))
		if m.apdu.typ != pduReject {
			t.Fatalf("%x: %+v", data, m.apdu)
		}
	}
}

type rpmResult struct {
	oid   objectID
	props map[uint32][]appValue
	errs  map[uint32]uint32
}

func parseRPMAck(t *testing.T, b []byte) []rpmResult {
	t.Helper()
	r := reader{b: b}
	var out []rpmResult
	for !r.done() {
		oid, err := r.ctxObjectID(0)
		if err != nil {
			t.Fatal(err)
		}
		res := rpmResult{oid: oid, props: map[uint32][]appValue{}, errs: map[uint32]uint32{}}
		if err := r.expectOpen(1); err != nil {
			t.Fatal(err)
		}
		for {
			tg, _ := r.peek()
			if tg.close && tg.num == 1 {
				r.next()
				break
			}
			p, err := r.ctxUnsigned(2)
			if err != nil {
				t.Fatal(err)
			}
			r.optCtxUnsigned(3)
			tg, err = r.next()
			if err != nil || !tg.open {
				t.Fatalf("want opening tag: %v", err)
			}
			raw, err := r.enclosed(tg.num)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := decodeValues(raw)
			if err != nil {
				t.Fatal(err)
			}
			if tg.num == 5 {
				res.errs[p] = vals[1].u
			} else {
				res.props[p] = vals
			}
		}
		out = append(out, res)
	}
	return out
}

func TestWriteProperty(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	write := func(o objectID, p uint32, val []byte, prio uint32) apdu {
		t.Helper()
		return f.ask1(unicast(confirmedReq(11, svcWriteProperty, 5, wpData(o, p, val, prio)))).apdu
	}
	ok := func(a apdu) {
		t.Helper()
		if a.typ != pduSimpleACK || a.service != svcWriteProperty || a.invokeID != 11 {
			t.Fatalf("answer %+v", a)
		}
	}
	deny := func(a apdu, code uint32) {
		t.Helper()
		if a.typ != pduError || a.errorCode != code {
			t.Fatalf("answer %+v, want error code %d", a, code)
		}
	}
	av := objectID{objAnalogValue, 2}
	ok(write(av, propPresentValue, appendReal(nil, 17.5), 0))
	if v := f.readOne(av, propPresentValue); v.f != 17.5 {
		t.Fatalf("read back %v", v.f)
	}
	deny(write(av, propPresentValue, appendUnsigned(nil, 17), 0), errCodeInvalidDataType)
	deny(write(av, propUnits, appendEnumerated(nil, 64), 0), errCodeWriteAccessDenied)
	deny(write(av, propPolarity, appendEnumerated(nil, 1), 0), errCodeUnknownProperty)
	deny(write(objectID{objAnalogValue, 99}, propPresentValue, appendReal(nil, 1), 0), errCodeUnknownObject)
	deny(write(testDevice, propVendorName, appendCharString(nil, "x"), 0), errCodeWriteAccessDenied)
	deny(write(testDevice, propObjectList, appendUnsigned(nil, 1), 0), errCodeWriteAccessDenied)

	// An input is written only while out of service; the value goes to its databus key.
	ai := objectID{objAnalogInput, 1}
	deny(write(ai, propPresentValue, appendReal(nil, 99), 0), errCodeWriteAccessDenied)
	ok(write(ai, propOutOfService, appendBoolean(nil, true), 0))
	if v := f.readOne(ai, propStatusFlags); len(v.bits) != 2 || v.bits[1] != 0x10 {
		t.Fatalf("status flags %x, want out-of-service set", v.bits)
	}
	ok(write(ai, propPresentValue, appendReal(nil, 99), 0))
	if got, _ := h.Databus.Get("SupplyAirTemp"); got != float64(99) {
		t.Fatalf("databus SupplyAirTemp = %v", got)
	}
	if v := f.readOne(ai, propPresentValue); v.f != 99 {
		t.Fatalf("read back %v", v.f)
	}

	// A commandable output: priorities, the priority array, relinquishing.
	ao := objectID{objAnalogOutput, 3}
	if v := f.readOne(ao, propPresentValue); v.f != 20 {
		t.Fatalf("relinquish default %v", v.f)
	}
	ok(write(ao, propPresentValue, appendReal(nil, 55), 8))
	ok(write(ao, propPresentValue, appendReal(nil, 70), 12))
	if v := f.readOne(ao, propPresentValue); v.f != 55 {
		t.Fatalf("commanded %v", v.f)
	}
	pa, _ := f.readValue(ao, propPriorityArray, -1)
	if len(pa) != 16 || pa[7].f != 55 || pa[11].f != 70 || pa[0].tag != tagNull {
		t.Fatalf("priority array %+v", pa)
	}
	ok(write(ao, propPresentValue, appendNull(nil), 8))
	if v := f.readOne(ao, propPresentValue); v.f != 70 {
		t.Fatalf("after relinquishing 8: %v", v.f)
	}
	deny(write(ao, propPresentValue, appendReal(nil, 1), 6), errCodeWriteAccessDenied)
	if a := write(ao, propPresentValue, appendReal(nil, 1), 17); a.typ != pduReject || a.reason != rejectParameterOutOfRange {
		t.Fatalf("priority 17: %+v", a)
	}
	msv := objectID{objMultiStateValue, 5}
	ok(write(msv, propPresentValue, appendUnsigned(nil, 4), 0))
	deny(write(msv, propPresentValue, appendUnsigned(nil, 5), 0), errCodeValueOutOfRange)
	bo := objectID{objBinaryOutput, 4}
	deny(write(bo, propPresentValue, appendEnumerated(nil, 2), 0), errCodeValueOutOfRange)

	// Names persist in the host state and bump the database revision.
	rev := f.readOne(testDevice, propDatabaseRevision).u
	ok(write(testDevice, propObjectName, appendCharString(nil, "pwned"), 0))
	if v := f.readOne(testDevice, propObjectName); v.s != "pwned" {
		t.Fatalf("name %q", v.s)
	}
	if v := f.readOne(testDevice, propDatabaseRevision); v.u != rev+1 {
		t.Fatalf("database revision %d after %d", v.u, rev)
	}
	// Another flow of the same host sees the write; another host does not.
	g := newFlow(t, sv, h)
	if v := g.readOne(testDevice, propObjectName); v.s != "pwned" {
		t.Fatalf("other flow reads %q", v.s)
	}
	_, h2 := testService(t, "controller")
	if v := newFlow(t, sv, h2).readOne(testDevice, propObjectName); v.s == "pwned" {
		t.Fatal("another host sees the write")
	}
	// Deep or malformed values are refused.
	var deep []byte
	for range 20 {
		deep = appendOpen(deep, 0)
	}
	for range 20 {
		deep = appendClose(deep, 0)
	}
	if a := write(av, propPresentValue, deep, 0); a.typ != pduReject {
		t.Fatalf("deep value: %+v", a)
	}
}

func TestPerHostIdentity(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/controller")
	sv := protocoltest.Configure(t, protocol{}, p).(*service)
	seen := map[uint32]bool{}
	serials := map[string]bool{}
	for i := range 20 {
		h := protocoltest.Host(p, netip.AddrFrom4([4]byte{127, 50, 0, byte(i + 1)}), uint64(i)*7919+1)
		f := newFlow(t, sv, h)
		inst := f.readOne(testDevice, propObjectIdentifier).oid.inst
		if inst == 0 || inst >= wildcardInstance {
			t.Fatalf("instance %d", inst)
		}
		if name := f.readOne(testDevice, propObjectName).s; name != fmt.Sprintf("BAC-%d", inst) {
			t.Fatalf("name %q for instance %d", name, inst)
		}
		serial := f.readOne(testDevice, propSerialNumber).s
		if len(serial) != 8 || serials[serial] {
			t.Fatalf("serial %q (seen before: %v)", serial, serials[serial])
		}
		serials[serial] = true
		seen[inst] = true
		// The same seed gives the same device.
		h2 := protocoltest.Host(p, h.Addr, uint64(i)*7919+1)
		if again := newFlow(t, sv, h2).readOne(testDevice, propObjectIdentifier).oid.inst; again != inst {
			t.Fatalf("same seed, instance %d then %d", inst, again)
		}
	}
	if len(seen) < 19 {
		t.Fatalf("20 hosts share instances: %d distinct", len(seen))
	}
}

func TestWhoHas(t *testing.T) {
	sv, h := testService(t, "conpot")
	f := newFlow(t, sv, h)
	byName := func(s string) []byte {
		b := []byte{0x10, svcWhoHas}
		b = appendTagHeader(b, 3, true, len(s)+1)
		return append(append(b, 0), s...)
	}
	byID := func(o objectID) []byte { return appendCtxObjectID([]byte{0x10, svcWhoHas}, 2, o) }
	for _, req := range [][]byte{byName("Door 01"), byID(objectID{objAccessDoor, 16})} {
		m := f.ask1(broadcastFrame(req))
		vals, err := decodeValues(m.apdu.data)
		if err != nil || m.apdu.service != svcIHave || len(vals) != 3 {
			t.Fatalf("I-Have %+v %v", vals, err)
		}
		if vals[0].oid != (objectID{objDevice, 36113}) || vals[1].oid != (objectID{objAccessDoor, 16}) || vals[2].s != "Door 01" {
			t.Fatalf("I-Have %+v", vals)
		}
	}
	name, _ := h.Databus.GetString("SystemName")
	if m := f.ask1(broadcastFrame(byName(name))); m.apdu.service != svcIHave {
		t.Fatal("device not found by name")
	}
	for _, req := range [][]byte{byName("nothing"), byID(objectID{objAccessDoor, 17}), {0x10, svcWhoHas}} {
		if out := f.ask(broadcastFrame(req)); len(out) != 0 {
			t.Fatalf("%x answered", req)
		}
	}
}

func TestTimeSynchronization(t *testing.T) {
	sv, h := testService(t, "conpot")
	f := newFlow(t, sv, h)
	req := appendTime(appendDate([]byte{0x10, svcUTCTimeSynchronizaton}, 2031, 5, 17, 6), 10, 20, 30, 0)
	if out := f.ask(broadcastFrame(req)); len(out) != 0 {
		t.Fatal("time synchronisation answered")
	}
	d := f.readOne(testDevice, propLocalDate)
	if d.raw[0] != 131 || d.raw[1] != 5 {
		t.Fatalf("local date after synchronisation %x", d.raw)
	}
}

// largeProfile writes a template whose object list needs several segments.
func largeProfile(t testing.TB, objects int) string {
	dir := filepath.Join(t.TempDir(), "large")
	os.MkdirAll(filepath.Join(dir, "bacnet"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte(`<core><template><entity name="unit">big</entity></template><databus/></core>`), 0o644)
	var b strings.Builder
	b.WriteString(`<bacnet enabled="True"><device_info><device_identifier>4711</device_identifier><model_name>Big</model_name></device_info><object_list>`)
	for i := range objects {
		fmt.Fprintf(&b, `<object name="AV%d"><properties><object_identifier>%d</object_identifier><object_type>Analog Value</object_type><present_value>%d.5</present_value></properties></object>`, i, i, i)
	}
	b.WriteString(`</object_list></bacnet>`)
	os.WriteFile(filepath.Join(dir, "bacnet", "bacnet.xml"), []byte(b.String()), 0o644)
	return dir
}

func TestSegmentedObjectList(t *testing.T) {
	p := protocoltest.Profile(t, largeProfile(t, 300))
	sv := protocoltest.Configure(t, protocol{}, p).(*service)
	h := protocoltest.Host(p, netip.MustParseAddr("127.50.0.9"), 3)
	f := newFlow(t, sv, h)
	req := unicast(confirmedReq(21, svcReadProperty, 3, rpData(testDevice, propObjectList, -1))) // 480 octets
	out := f.ask(req)
	if len(out) != 1 {
		t.Fatalf("%d datagrams before the first Segment-ACK, want 1", len(out))
	}
	var data []byte
	collect := func(seg []byte, seq int) bool {
		t.Helper()
		m, err := decodeMessage(seg)
		if err != nil || m.apdu.typ != pduComplexACK || !m.apdu.segmented() || int(m.apdu.seq) != seq || m.apdu.invokeID != 21 {
			t.Fatalf("segment %d: %+v %v", seq, m.apdu, err)
		}
		if len(seg)-6 > 480 {
			t.Fatalf("segment %d is %d octets", seq, len(seg)-6)
		}
		data = append(data, m.apdu.data...)
		return m.apdu.flags&flagMOR != 0
	}
	more := collect(out[0], 0)
	seq, rounds := 0, 0
	for more {
		if rounds++; rounds > 100 {
			t.Fatal("no end")
		}
		out = f.ask(unicast(appendSegmentACK(nil, 21, byte(seq), 2, false)))
		if len(out) == 0 || len(out) > 2 {
			t.Fatalf("window of 2 gave %d segments", len(out))
		}
		for _, seg := range out {
			seq++
			more = collect(seg, seq)
		}
	}
	if out := f.ask(unicast(appendSegmentACK(nil, 21, byte(seq), 2, false))); len(out) != 0 {
		t.Fatal("answered the final Segment-ACK")
	}
	vals := decodeAll(t, data)
	if len(vals) != 301 || vals[300].oid != (objectID{objAnalogValue, 299}) {
		t.Fatalf("reassembled object list: %d values", len(vals))
	}
	// A retransmission timer resends the unacknowledged window through the session.
	f.ask(req)
	ts := sv.transfers(f.s)
	ts.mu.Lock()
	tr := ts.m[21]
	ts.mu.Unlock()
	sv.retransmit(f.s, ts, 21, tr)
	f.mu.Lock()
	if len(f.sent) != 1 || !bytes.Equal(f.sent[0], out0(t, sv, h, req)) {
		t.Fatalf("retransmitted %d datagrams", len(f.sent))
	}
	f.mu.Unlock()
	// The client's Abort ends the transfer.
	f.ask(unicast(appendAbort(nil, 21, abortOther)[:3:3]))
	ts.mu.Lock()
	if len(ts.m) != 0 {
		t.Fatal("transfer survives the client's abort")
	}
	ts.mu.Unlock()

	// A client that does not accept segments gets an Abort; so does one that accepts too few.
	noSA := append([]byte{pduConfirmed << 4, 0x03, 22, svcReadProperty}, rpData(testDevice, propObjectList, -1)...)
	if m := f.ask1(unicast(noSA)); m.apdu.typ != pduAbort || m.apdu.reason != abortSegmentationNotSupport {
		t.Fatalf("no segmentation accepted: %+v", m.apdu)
	}
	few := append([]byte{pduConfirmed<<4 | flagSA, 0x13, 23, svcReadProperty}, rpData(testDevice, propObjectList, -1)...)
	if m := f.ask1(unicast(few)); m.apdu.typ != pduAbort || m.apdu.reason != abortBufferOverflow {
		t.Fatalf("two segments accepted: %+v", m.apdu)
	}
	// Transfers per flow are bounded.
	for i := range maxTransfers + 2 {
		f.ask(unicast(confirmedReq(byte(100+i), svcReadProperty, 3, rpData(testDevice, propObjectList, -1))))
	}
	ts.mu.Lock()
	if len(ts.m) > maxTransfers {
		t.Fatalf("%d transfers in progress", len(ts.m))
	}
	ts.mu.Unlock()
	// Closing the session stops every timer.
	f.s.Close()
	ts.mu.Lock()
	if len(ts.m) != 0 {
		t.Fatal("transfers survive the session")
	}
	ts.mu.Unlock()
}

// out0 is the first segment a fresh flow gets for req.
func out0(t *testing.T, sv *service, h *protocols.Host, req []byte) []byte {
	out := newFlow(t, sv, h).ask(req)
	return out[0]
}

func TestEventsAndMetrics(t *testing.T) {
	sv, h := testService(t, "conpot")
	f := newFlow(t, sv, h)
	f.ask(unhex(t, "810a001101040005010c0c023fffff194d"))
	f.ask(unicast(confirmedReq(2, svcReadProperty, 5, rpData(objectID{objAnalogInput, 5}, propPresentValue, -1))))
	ev := f.rec.OfType("bacnet.request")
	if len(ev) != 2 {
		t.Fatalf("%d events", len(ev))
	}
	fields := func(e *protocols.Event) map[string]any {
		m := map[string]any{}
		for _, fl := range e.Fields {
			m[fl.Key] = fl.Value
		}
		return m
	}
	f0, f1 := fields(ev[0]), fields(ev[1])
	if f0["service"] != "read-property" || f0["object"] != "device,4194303" || f0["property"] != 77 || f0["invoke_id"] != 1 || len(ev[0].Response) == 0 {
		t.Fatalf("event %+v", f0)
	}
	if f1["error_class"] != errClassObject || f1["error_code"] != errCodeUnknownObject {
		t.Fatalf("event %+v", f1)
	}
	_ = binary.BigEndian
	_ = time.Now
}

// decodeAll decodes every application value of a reassembled answer, without the bounds
// the server applies to requests.
func decodeAll(t *testing.T, b []byte) []appValue {
	t.Helper()
	var out []appValue
	for pos := 0; pos < len(b); {
		tg, n, err := decodeTag(b[pos:])
		if err != nil {
			t.Fatal(err)
		}
		pos += n
		if tg.context || tg.open || tg.close {
			continue
		}
		v, err := decodeApp(tg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestAmplificationBound: for a source that has not proved it receives answers, an answer
// that passes the sensor's bound comes in segments small enough that every datagram's
// answers stay within the bound of that datagram (the request, then each Segment-ACK), and
// the reassembled answer is whole. A client that does not take segments is refused as a
// device that cannot segment refuses it, and reads arrays element by element.
func TestAmplificationBound(t *testing.T) {
	p := protocoltest.Profile(t, largeProfile(t, 300))
	sv := protocoltest.Configure(t, protocol{}, p).(*service)
	h := protocoltest.Host(p, netip.MustParseAddr("127.50.0.9"), 3)
	f := newFlow(t, sv, h)
	f.s.Amplification = 10
	within := func(req []byte, out [][]byte) {
		t.Helper()
		n := 0
		for _, b := range out {
			n += len(b)
		}
		if n > 10*len(req) {
			t.Fatalf("%d octets answer %d octets", n, len(req))
		}
	}
	for i, tc := range []struct {
		data  []byte
		svc   byte
		check func(vals []appValue)
	}{
		{rpData(testDevice, propObjectList, -1), svcReadProperty, func(vals []appValue) {
			if len(vals) != 301 || vals[300].oid != (objectID{objAnalogValue, 299}) {
				t.Fatalf("object list: %d values", len(vals))
			}
		}},
		{rpmData(map[objectID][]uint32{testDevice: {propAll}}, []objectID{testDevice}), svcReadPropertyMultiple, func(vals []appValue) {
			if len(vals) < 40 {
				t.Fatalf("RPM ALL of the device: %d values", len(vals))
			}
		}},
	} {
		invoke := byte(30 + i)
		req := unicast(confirmedReq(invoke, tc.svc, 5, tc.data))
		out := f.ask(req)
		within(req, out)
		var data []byte
		seq, more := -1, true
		for rounds := 0; more; rounds++ {
			if rounds > maxSentSegments {
				t.Fatal("no end")
			}
			if len(out) == 0 {
				t.Fatalf("no segment after %d", seq)
			}
			for _, seg := range out {
				m, err := decodeMessage(seg)
				if err != nil || m.apdu.typ != pduComplexACK || !m.apdu.segmented() || m.apdu.invokeID != invoke || int(m.apdu.seq) != seq+1 {
					t.Fatalf("segment after %d: %+v %v", seq, m.apdu, err)
				}
				if m.apdu.window != 1 {
					t.Fatalf("proposed window %d: a client would wait for segments the bound holds back", m.apdu.window)
				}
				seq++
				data = append(data, m.apdu.data...)
				more = m.apdu.flags&flagMOR != 0
			}
			if more {
				ack := unicast(appendSegmentACK(nil, invoke, byte(seq), 16, false))
				out = f.ask(ack)
				within(ack, out)
			}
		}
		if seq < 2 {
			t.Fatalf("%d segments", seq+1)
		}
		var vals []appValue
		for pos := 0; pos < len(data); {
			tg, n, err := decodeTag(data[pos:])
			if err != nil {
				t.Fatal(err)
			}
			pos += n
			if tg.context || tg.open || tg.close {
				continue
			}
			v, err := decodeApp(tg)
			if err != nil {
				t.Fatal(err)
			}
			vals = append(vals, v)
		}
		tc.check(vals)
	}
	// A client that does not take segments is refused; so is every client when the bound
	// leaves no room for a segment.
	noSA := unicast(append([]byte{pduConfirmed << 4, 0x05, 40, svcReadProperty}, rpData(testDevice, propObjectList, -1)...))
	if m := f.ask1(noSA); m.apdu.typ != pduAbort || m.apdu.reason != abortSegmentationNotSupport {
		t.Fatalf("no segments taken: %+v", m.apdu)
	}
	if v, _ := f.readValue(testDevice, propObjectList, 0); len(v) != 1 || v[0].u != 301 {
		t.Fatalf("object-list[0] %+v", v)
	}
	if v, _ := f.readValue(testDevice, propObjectList, 301); len(v) != 1 || v[0].oid != (objectID{objAnalogValue, 299}) {
		t.Fatalf("object-list[301] %+v", v)
	}
	if v := f.readOne(testDevice, propModelName); v.s != "Big" {
		t.Fatalf("model name %q", v.s)
	}
	f.s.Amplification = 2
	if m := f.ask1(unicast(confirmedReq(41, svcReadProperty, 5, rpData(testDevice, propObjectList, -1)))); m.apdu.typ != pduAbort || m.apdu.reason != abortSegmentationNotSupport {
		t.Fatalf("bound 2: %+v", m.apdu)
	}
	// A verified session has no bound.
	f.s.Verify()
	if out := f.ask(unicast(confirmedReq(42, svcReadProperty, 5, rpData(testDevice, propObjectList, -1)))); len(out) != 1 || out[0][6]>>4 != pduComplexACK || out[0][6]&flagSEG == 0 || len(out[0]) < 1000 {
		t.Fatalf("verified: %x", out)
	}
}

// TestHostileRequests: truncated tags, lengths beyond the datagram, deep nesting and
// segmented requests with absurd windows get a Reject, an Abort or silence.
func TestHostileRequests(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	var deep []byte
	for range 64 {
		deep = appendOpen(deep, 3)
	}
	for _, tc := range []struct {
		name string
		req  []byte
		want byte // 0xff: silence
	}{
		{"truncated object identifier", unicast(confirmedReq(1, svcReadProperty, 5, unhex(t, "0c0200"))), pduReject},
		{"length beyond the datagram", unicast(confirmedReq(1, svcReadProperty, 5, unhex(t, "0d7f0200"))), pduReject},
		{"four-octet length", unicast(confirmedReq(1, svcWriteProperty, 5, unhex(t, "0c00800002 1955 3e 75ff7fffffff"))), pduReject},
		{"deep nesting", unicast(confirmedReq(1, svcWriteProperty, 5, append(unhex(t, "0c00800002 1955 3e"), deep...))), pduReject},
		{"unclosed value", unicast(confirmedReq(1, svcWriteProperty, 5, unhex(t, "0c00800002 1955 3e 4441b00000"))), pduReject},
		{"RPM without closing tag", unicast(confirmedReq(1, svcReadPropertyMultiple, 5, unhex(t, "0c023fffff 1e 0908"))), pduReject},
		{"segmented request, window 0", unicast([]byte{0x0e, 0x05, 7, 0, 0, svcWriteProperty, 0x0c}), pduAbort},
		{"segmented request, window 255", unicast([]byte{0x0e, 0x05, 7, 0, 255, svcWriteProperty, 0x0c}), pduAbort},
		{"segmented request cut short", unicast([]byte{0x0e, 0x05, 7, 0}), pduReject},
		{"Segment-ACK for nothing", unicast(appendSegmentACK(nil, 99, 200, 255, false)), 0xff},
		{"Who-Is with a four-octet range", unicast(unhex(t, "1008 0cffffffff 1cffffffff")), 0xff},
		{"Who-Has without a choice", unicast(unhex(t, "1007 0900 1901")), 0xff},
		{"time synchronisation with a bad date", unicast(unhex(t, "1006 a4ff0d2001 b4190000ff")), 0xff},
		{"empty APDU", unhex(t, "810a0006 0104"), 0xff},
		{"SubscribeCOV, object identifier cut", unicast(confirmedReq(1, svcSubscribeCOV, 5, unhex(t, "0907 1c0000"))), pduReject},
		{"SubscribeCOV, two-octet boolean", unicast(confirmedReq(1, svcSubscribeCOV, 5, unhex(t, "0907 1c00000001 2a0001 393c"))), pduReject},
		{"SubscribeCOV, five-octet lifetime", unicast(confirmedReq(1, svcSubscribeCOV, 5, unhex(t, "0907 1c00000001 2900 3d05ffffffffff"))), pduReject},
		{"SubscribeCOV, trailing tag", unicast(confirmedReq(1, svcSubscribeCOV, 5, unhex(t, "0907 1c00000001 2900 393c 4901"))), pduReject},
		{"SubscribeCOV, no object", unicast(confirmedReq(1, svcSubscribeCOV, 5, unhex(t, "0907"))), pduReject},
		{"DCC, duration of four octets", unicast(confirmedReq(1, svcDeviceCommControl, 5, unhex(t, "0cffffffff 1901"))), pduReject},
		{"DCC, password as an unsigned", unicast(confirmedReq(1, svcDeviceCommControl, 5, unhex(t, "1901 2907"))), pduReject},
		{"ReinitializeDevice, password of 300 octets", unicast(confirmedReq(1, svcReinitializeDevice, 5, append(unhex(t, "0901 1d ff012d 00"), bytes.Repeat([]byte("a"), 300)...))), pduReject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := f.ask(tc.req)
			if tc.want == 0xff {
				if len(out) != 0 {
					t.Fatalf("answered %x", out)
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("%d answers", len(out))
			}
			m, err := decodeMessage(out[0])
			if err != nil || m.apdu.typ != tc.want {
				t.Fatalf("answer %x (%v), want type %d", out[0], err, tc.want)
			}
		})
	}
}

// segmentedReq is segment seq of a confirmed request with proposed window 4.
func segmentedReq(invoke, seq byte, more bool, service byte, part []byte) []byte {
	h := byte(pduConfirmed<<4 | flagSEG | flagSA)
	if more {
		h |= flagMOR
	}
	return unicast(append([]byte{h, 0x05, invoke, seq, 4, service}, part...))
}

// TestSegmentedRequest sends a WriteProperty of a long description in segments: each is
// acknowledged with a window of one, a gap gets a negative Segment-ACK, the last completes
// the write.
func TestSegmentedRequest(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	long := strings.Repeat("Supply air handling unit serving floors 1 to 3; ", 4)
	req := wpData(objectID{objAnalogInput, 1}, propDescription, appendCharString(nil, long), 0)
	parts := [][]byte{req[:60], req[60:120], req[120:]}
	segAck := func(out [][]byte, seq byte, nak bool) {
		t.Helper()
		if len(out) != 1 {
			t.Fatalf("%d answers, want a Segment-ACK", len(out))
		}
		m, err := decodeMessage(out[0])
		want := byte(flagSRV)
		if nak {
			want |= flagNAK
		}
		if err != nil || m.apdu.typ != pduSegmentACK || m.apdu.seq != seq || m.apdu.window != 1 || m.apdu.flags != want || m.apdu.invokeID != 30 {
			t.Fatalf("answer %x: %+v %v", out[0], m.apdu, err)
		}
	}
	segAck(f.ask(segmentedReq(30, 0, true, svcWriteProperty, parts[0])), 0, false)
	segAck(f.ask(segmentedReq(30, 0, true, svcWriteProperty, parts[0])), 0, false) // a duplicate
	segAck(f.ask(segmentedReq(30, 2, false, svcWriteProperty, parts[2])), 0, true) // a gap
	segAck(f.ask(segmentedReq(30, 1, true, svcWriteProperty, parts[1])), 1, false)
	m := f.ask1(segmentedReq(30, 2, false, svcWriteProperty, parts[2]))
	if m.apdu.typ != pduSimpleACK || m.apdu.invokeID != 30 {
		t.Fatalf("last segment: %+v", m.apdu)
	}
	if v := f.readOne(objectID{objAnalogInput, 1}, propDescription); v.s != long {
		t.Fatalf("description %q", v.s)
	}
	if n := sv.held.n.Load(); n != 0 {
		t.Fatalf("%d octets still held", n)
	}
	// A segment of nothing in progress, and a request past the bound, are aborted.
	if m := f.ask1(segmentedReq(31, 3, true, svcWriteProperty, parts[1])); m.apdu.typ != pduAbort || m.apdu.reason != abortInvalidAPDUInThisState {
		t.Fatalf("stray segment: %+v", m.apdu)
	}
	big := make([]byte, 1400)
	f.ask(segmentedReq(32, 0, true, svcWriteProperty, big))
	var last message
	for i := 1; i < 10; i++ {
		out := f.ask(segmentedReq(32, byte(i), true, svcWriteProperty, big))
		last, _ = decodeMessage(out[0])
		if last.apdu.typ == pduAbort {
			break
		}
	}
	if last.apdu.typ != pduAbort || last.apdu.reason != abortBufferOverflow {
		t.Fatalf("request past %d octets: %+v", maxRequestLen, last.apdu)
	}
	// Reassemblies per flow are bounded, and released when the flow ends.
	for i := range maxReassembliesPF + 1 {
		out := f.ask(segmentedReq(byte(40+i), 0, true, svcWriteProperty, parts[0]))
		m, _ := decodeMessage(out[0])
		if i == maxReassembliesPF && (m.apdu.typ != pduAbort || m.apdu.reason != abortOutOfResources) {
			t.Fatalf("reassembly %d: %+v", i, m.apdu)
		}
	}
	f.s.Close()
	if n := sv.held.n.Load(); n != 0 {
		t.Fatalf("%d octets held after the flow ended", n)
	}
	// A device that does not receive segments aborts them.
	sv2, _, err := section(t, "", `<bacnet enabled="True"><device_info><segmentation_supported>segmentedTransmit</segmentation_supported></device_info></bacnet>`)
	if err != nil {
		t.Fatal(err)
	}
	g := newFlow(t, sv2, h)
	if m := g.ask1(segmentedReq(1, 0, true, svcWriteProperty, parts[0])); m.apdu.typ != pduAbort || m.apdu.reason != abortSegmentationNotSupport {
		t.Fatalf("transmit-only device: %+v", m.apdu)
	}
}

// memStore stands for the sensor's state store: every host made from it sees what the
// earlier ones saved.
type memStore struct{ kept map[string][]byte }

func (d *memStore) Save(k string, v []byte) bool  { d.kept[k] = append([]byte(nil), v...); return true }
func (d *memStore) Saved(k string) ([]byte, bool) { v, ok := d.kept[k]; return v, ok }
func (d *memStore) SavedKeys() (out []string) {
	for k := range d.kept {
		out = append(out, k)
	}
	return out
}

// TestWritesOutliveTheHost: names, commanded outputs, databus-backed values, the database
// revision and a time synchronisation are there again when the host is created anew (after
// eviction or a restart); garbage in the store is skipped.
func TestWritesOutliveTheHost(t *testing.T) {
	p := protocoltest.Profile(t, "testdata/controller")
	sv := protocoltest.Configure(t, protocol{}, p).(*service)
	disk := &memStore{kept: map[string][]byte{}}
	addr := netip.MustParseAddr("127.50.0.30")
	h := protocols.NewStoredHost(addr, p, 5, time.Now(), 0, disk)
	f := newFlow(t, sv, h)
	write := func(o objectID, prop uint32, val []byte, prio uint32) {
		t.Helper()
		if a := f.ask1(unicast(confirmedReq(1, svcWriteProperty, 5, wpData(o, prop, val, prio)))).apdu; a.typ != pduSimpleACK {
			t.Fatalf("write: %+v", a)
		}
	}
	ao, ai := objectID{objAnalogOutput, 3}, objectID{objAnalogInput, 1}
	write(testDevice, propObjectName, appendCharString(nil, "owned"), 0)
	write(ao, propPresentValue, appendReal(nil, 66), 9)
	write(ai, propOutOfService, appendBoolean(nil, true), 0)
	write(ai, propPresentValue, appendReal(nil, 42), 0) // the databus key SupplyAirTemp
	f.ask(broadcastFrame(appendTime(appendDate([]byte{0x10, svcUTCTimeSynchronizaton}, 2031, 5, 17, 6), 10, 20, 30, 0)))
	rev := f.readOne(testDevice, propDatabaseRevision).u

	g := newFlow(t, sv, protocols.NewStoredHost(addr, p, 5, time.Now(), 0, disk))
	if v := g.readOne(testDevice, propObjectName); v.s != "owned" {
		t.Fatalf("name %q", v.s)
	}
	if v := g.readOne(ao, propPresentValue); v.f != 66 {
		t.Fatalf("commanded output %v", v.f)
	}
	if pa, _ := g.readValue(ao, propPriorityArray, 9); len(pa) != 1 || pa[0].f != 66 {
		t.Fatalf("priority 9: %+v", pa)
	}
	if v := g.readOne(ai, propPresentValue); v.f != 42 {
		t.Fatalf("databus-backed value %v", v.f)
	}
	if v := g.readOne(testDevice, propDatabaseRevision); v.u != rev {
		t.Fatalf("database revision %d, want %d", v.u, rev)
	}
	if d := g.readOne(testDevice, propLocalDate); d.raw[0] != 131 {
		t.Fatalf("local date %x after a restart", d.raw)
	}
	// A host without the store starts fresh; a corrupt or hostile store is skipped.
	if v := newFlow(t, sv, protocols.NewHost(addr, p, 5, time.Now())).readOne(testDevice, propObjectName); v.s == "owned" {
		t.Fatal("a host without the store sees the write")
	}
	for _, bad := range []string{`{`, `{"w":[{"o":0,"p":77,"v":"3g=="}]}`, `{"w":[{"o":8388608,"p":121,"v":"dQQAeHh4"}],"p":[{"o":8388608,"s":[]}]}`, `{"c":99999999999999999999}`} {
		disk.kept[stateKey] = []byte(bad)
		h := newFlow(t, sv, protocols.NewStoredHost(addr, p, 5, time.Now(), 0, disk))
		if v := h.readOne(testDevice, propVendorName); v.s != "Example Controls" {
			t.Fatalf("%s: vendor name %q", bad, v.s)
		}
	}
}

// dccReq and reinitReq build the two password-checked requests (minutes < 0: no duration).
func dccReq(invoke byte, minutes int64, state uint32, pw string) []byte {
	var b []byte
	if minutes >= 0 {
		b = appendCtxUnsigned(b, 0, uint32(minutes))
	}
	b = appendCtxUnsigned(b, 1, state)
	if pw != "" {
		b = append(appendTagHeader(b, 2, true, len(pw)+1), 0)
		b = append(b, pw...)
	}
	return unicast(confirmedReq(invoke, svcDeviceCommControl, 5, b))
}

func reinitReq(invoke byte, state uint32, pw string) []byte {
	b := appendCtxUnsigned(nil, 0, state)
	if pw != "" {
		b = append(appendTagHeader(b, 1, true, len(pw)+1), 0)
		b = append(b, pw...)
	}
	return unicast(confirmedReq(invoke, svcReinitializeDevice, 5, b))
}

// TestPasswordCheckedServices: DeviceCommunicationControl and ReinitializeDevice check the
// profile's password and, given the right one, do what a device does: disable silences the
// host to everything but these two services until enabled, timed out or restarted; a cold
// or warm start answers nothing for a while; backup and restore are not supported.
func TestPasswordCheckedServices(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	const pw = "Hvac!2024"
	read := unicast(confirmedReq(40, svcReadProperty, 5, rpData(testDevice, propObjectName, -1)))
	answered := func() bool { return len(f.ask(read)) == 1 }
	simple := func(what string, req []byte) {
		t.Helper()
		if m := f.ask1(req); m.apdu.typ != pduSimpleACK {
			t.Fatalf("%s: %+v", what, m.apdu)
		}
	}
	for _, tc := range []struct {
		name string
		req  []byte
		typ  byte
		code uint32 // error code or reject reason
	}{
		{"DCC, wrong password", dccReq(1, 5, dccDisable, "admin"), pduError, errCodePasswordFailure},
		{"DCC, no password", dccReq(2, 5, dccDisable, ""), pduError, errCodePasswordFailure},
		{"DCC, password too long", dccReq(3, 5, dccDisable, "012345678901234567890"), pduReject, rejectParameterOutOfRange},
		{"DCC, duration past Unsigned16", dccReq(4, 70000, dccDisable, pw), pduReject, rejectParameterOutOfRange},
		{"DCC, state 3", dccReq(5, 5, 3, pw), pduReject, rejectParameterOutOfRange},
		{"reinitialize, wrong password", reinitReq(6, reinitWarmstart, "password"), pduError, errCodePasswordFailure},
		{"reinitialize, state 8", reinitReq(7, 8, pw), pduReject, rejectParameterOutOfRange},
		{"reinitialize, start backup", reinitReq(8, 2, pw), pduError, errCodeOptionalFunctionalityNotSupported},
	} {
		m := f.ask1(tc.req)
		got := m.apdu.errorCode
		if m.apdu.typ == pduReject {
			got = uint32(m.apdu.reason)
		}
		if m.apdu.typ != tc.typ || got != tc.code {
			t.Errorf("%s: %+v, want type %d code %d", tc.name, m.apdu, tc.typ, tc.code)
		}
	}
	if !answered() {
		t.Fatal("a refused request changed the host")
	}

	// Disable without a duration: silence to everything else, until enabled.
	simple("DCC disable", dccReq(10, -1, dccDisable, pw))
	if answered() || len(f.ask(unicast(whoIs(-1, -1)))) != 0 {
		t.Fatal("a disabled device answers")
	}
	if ev := f.rec.Events(); !hasField(ev[len(ev)-1], "silenced", "communication-disabled") {
		t.Fatalf("silenced request's event: %+v", ev[len(ev)-1].Fields)
	}
	if m := f.ask1(dccReq(11, -1, dccEnable, "wrong")); m.apdu.typ != pduError {
		t.Fatalf("DCC enable with a wrong password while disabled: %+v", m.apdu)
	}
	simple("DCC enable", dccReq(12, -1, dccEnable, pw))
	if !answered() {
		t.Fatal("enabled again, the device does not answer")
	}
	// A timed disable ends by itself.
	simple("DCC disable 5 min", dccReq(13, 5, dccDisable, pw))
	st := sv.state(h)
	if answered() {
		t.Fatal("a disabled device answers")
	}
	st.mu.Lock()
	st.dccUntil = time.Now().Add(-time.Second)
	st.mu.Unlock()
	if !answered() {
		t.Fatal("the device stays disabled past the duration")
	}
	// Disable-initiation keeps answering, and stops initiating.
	simple("DCC disable-initiation", dccReq(14, -1, dccDisableInitiation, pw))
	if !answered() || st.initiates(time.Now()) {
		t.Fatal("disable-initiation")
	}
	// A warm start: acknowledged, silent while restarting, back with communication enabled.
	simple("DCC disable", dccReq(15, -1, dccDisable, pw))
	simple("warm start", reinitReq(16, reinitWarmstart, pw))
	if answered() || len(f.ask(dccReq(17, -1, dccEnable, pw))) != 0 {
		t.Fatal("a restarting device answers")
	}
	st.mu.Lock()
	st.restartUntil = time.Now().Add(-time.Second)
	st.mu.Unlock()
	if !answered() || !st.initiates(time.Now()) {
		t.Fatal("after the restart, communication is not enabled")
	}
	simple("activate changes", reinitReq(18, reinitActivateChanges, pw))
	if !answered() {
		t.Fatal("activate-changes restarted the device")
	}
}

func hasField(e *protocols.Event, key string, val any) bool {
	for _, f := range e.Fields {
		if f.Key == key && f.Value == val {
			return true
		}
	}
	return false
}

// covReq is a SubscribeCOV (confirmed < 0: a cancellation; lifetime < 0: none).
func covReq(invoke byte, process uint32, o objectID, confirmed int, lifetime int64) []byte {
	b := appendCtxUnsigned(nil, 0, process)
	b = appendCtxObjectID(b, 1, o)
	if confirmed >= 0 {
		b = append(appendTagHeader(b, 2, true, 1), byte(confirmed))
	}
	if lifetime >= 0 {
		b = appendCtxUnsigned(b, 3, uint32(lifetime))
	}
	return unicast(confirmedReq(invoke, svcSubscribeCOV, 5, b))
}

// TestSubscribeCOV: a subscription is acknowledged and followed at once by a notification
// of present-value and status-flags; later changes (past the cov-increment) are notified,
// small ones not; lifetimes end subscriptions, cancellations remove them, and everything is
// bounded.
func TestSubscribeCOV(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	av := objectID{objAnalogValue, 2}
	out := f.ask(covReq(1, 9, av, 0, 120))
	if len(out) != 2 {
		t.Fatalf("%d datagrams, want the SimpleACK and a notification", len(out))
	}
	if m, _ := decodeMessage(out[0]); m.apdu.typ != pduSimpleACK || m.apdu.service != svcSubscribeCOV {
		t.Fatalf("first answer %x", out[0])
	}
	note := func(b []byte) (message, []appValue) {
		t.Helper()
		m, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("notification %x: %v", b, err)
		}
		r := reader{b: m.apdu.data}
		if p, err := r.ctxUnsigned(0); err != nil || p != 9 {
			t.Fatalf("process %d %v", p, err)
		}
		if d, err := r.ctxObjectID(1); err != nil || d.typ != objDevice || d.inst != sv.state(h).instance {
			t.Fatalf("initiating device %v %v", d, err)
		}
		if o, err := r.ctxObjectID(2); err != nil || o != av {
			t.Fatalf("monitored object %v %v", o, err)
		}
		if left, err := r.ctxUnsigned(3); err != nil || left < 118 || left > 120 {
			t.Fatalf("time remaining %d %v", left, err)
		}
		rest := m.apdu.data[r.pos:]
		if !bytes.HasPrefix(rest, []byte{0x4e, 0x09, 0x55, 0x2e}) || !bytes.Contains(rest, []byte{0x09, 0x6f, 0x2e, 0x82, 0x04}) {
			t.Fatalf("list of values %x", rest)
		}
		return m, decodeAll(t, rest)
	}
	m, vals := note(out[1])
	if m.apdu.typ != pduUnconfirmed || m.apdu.service != svcUnconfirmedCOVNotification || len(vals) != 2 || vals[0].f != 14.5 {
		t.Fatalf("initial notification %+v %+v", m.apdu, vals)
	}
	ct := sv.covTable(f.s)
	sent := func() [][]byte {
		f.mu.Lock()
		defer f.mu.Unlock()
		s := f.sent
		f.sent = nil
		return s
	}
	// Nothing changed: no notification. A change under the default increment: none either.
	sv.covCheck(f.s, ct)
	f.ask(unicast(confirmedReq(2, svcWriteProperty, 5, wpData(av, propPresentValue, appendReal(nil, 14.7), 16))))
	sv.covCheck(f.s, ct)
	if s := sent(); len(s) != 0 {
		t.Fatalf("notified %d times without a change past the increment", len(s))
	}
	f.ask(unicast(confirmedReq(3, svcWriteProperty, 5, wpData(av, propPresentValue, appendReal(nil, 19.0), 16))))
	sv.covCheck(f.s, ct)
	s := sent()
	if len(s) != 1 {
		t.Fatalf("%d notifications after a change", len(s))
	}
	if _, vals := note(s[0]); vals[0].f != 19 {
		t.Fatalf("notified %+v", vals)
	}
	// Confirmed notifications ask for a reply.
	out = f.ask(covReq(4, 9, av, 1, 120))
	if len(out) != 2 {
		t.Fatalf("%d datagrams", len(out))
	}
	if m, _ := note(out[1]); m.apdu.typ != pduConfirmed || m.apdu.service != svcConfirmedCOVNotification || out[1][5]&npduExpectReply == 0 {
		t.Fatalf("confirmed notification %x", out[1])
	}
	// Disable-initiation stops notifications.
	simpleACK := func(req []byte) {
		t.Helper()
		if m := f.ask1(req); m.apdu.typ != pduSimpleACK {
			t.Fatalf("%x: %+v", req, m.apdu)
		}
	}
	simpleACK(dccReq(5, -1, dccDisableInitiation, "Hvac!2024"))
	f.ask(unicast(confirmedReq(6, svcWriteProperty, 5, wpData(av, propPresentValue, appendReal(nil, 25.0), 16))))
	sv.covCheck(f.s, ct)
	if s := sent(); len(s) != 0 {
		t.Fatal("notified while initiation is disabled")
	}
	simpleACK(dccReq(7, -1, dccEnable, "Hvac!2024"))
	// A lifetime ends the subscription; a cancellation removes one.
	ct.mu.Lock()
	ct.subs[covKey{9, av}].expires = time.Now().Add(-time.Second)
	ct.mu.Unlock()
	sv.covCheck(f.s, ct)
	ct.mu.Lock()
	n := len(ct.subs)
	ct.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d subscriptions after the lifetime", n)
	}
	f.ask(covReq(8, 10, av, 0, 0))
	simpleACK(covReq(9, 10, av, -1, -1))
	simpleACK(covReq(10, 11, av, -1, -1)) // cancelling what does not exist
	ct.mu.Lock()
	n = len(ct.subs)
	ct.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d subscriptions after the cancellation", n)
	}
	// Errors and bounds.
	for _, tc := range []struct {
		name        string
		req         []byte
		class, code uint32
	}{
		{"unknown object", covReq(20, 1, objectID{objAnalogInput, 999}, 0, 60), errClassObject, errCodeUnknownObject},
		{"the device object", covReq(21, 1, testDevice, 0, 60), errClassObject, errCodeOptionalFunctionalityNotSupported},
		{"lifetime past 8 h", covReq(22, 1, av, 0, maxLifetime+1), errClassServices, errCodeValueOutOfRange},
	} {
		if m := f.ask1(tc.req); m.apdu.typ != pduError || m.apdu.errorClass != tc.class || m.apdu.errorCode != tc.code {
			t.Errorf("%s: %+v", tc.name, m.apdu)
		}
	}
	if m := f.ask1(covReq(23, 1, av, -1, 60)); m.apdu.typ != pduReject {
		t.Errorf("a lifetime without issue-confirmed-notifications: %+v", m.apdu)
	}
	for i := range maxSubscriptions {
		f.ask(covReq(byte(30+i), uint32(100+i), av, 0, 60))
	}
	if m := f.ask1(covReq(60, 999, av, 0, 60)); m.apdu.typ != pduError || m.apdu.errorClass != errClassResources {
		t.Fatalf("subscription %d: %+v", maxSubscriptions+1, m.apdu)
	}
	// The flow's end ends its subscriptions and their timer.
	f.s.Close()
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if len(ct.subs) != 0 || !ct.closed {
		t.Fatal("subscriptions outlive the flow")
	}
}

// TestStateText: a multi-state object's state-text is an array of texts (whole, by index, its
// size at index 0), not writable.
func TestStateText(t *testing.T) {
	sv, h := testService(t, "controller")
	f := newFlow(t, sv, h)
	mode := objectID{objMultiStateValue, 5}
	v, _ := f.readValue(mode, propStateText, -1)
	if len(v) != 4 || v[0].s != "Off" || v[3].s != "Standby" {
		t.Fatalf("state-text %+v", v)
	}
	if v, _ := f.readValue(mode, propStateText, 0); len(v) != 1 || v[0].u != 4 {
		t.Fatalf("state-text[0] %+v", v)
	}
	if v, _ := f.readValue(mode, propStateText, 2); len(v) != 1 || v[0].s != "Occupied" {
		t.Fatalf("state-text[2] %+v", v)
	}
	if m := f.ask1(unicast(confirmedReq(7, svcReadProperty, 5, rpData(mode, propStateText, 5)))); m.apdu.typ != pduError || m.apdu.errorCode != errCodeInvalidArrayIndex {
		t.Fatalf("state-text[5]: %+v", m.apdu)
	}
	for _, idx := range []int64{-1, 1} {
		req := wpData(mode, propStateText, appendCharString(nil, "Boost"), 16)
		if idx >= 0 {
			req = append(rpData(mode, propStateText, idx), req[len(rpData(mode, propStateText, -1)):]...)
		}
		if m := f.ask1(unicast(confirmedReq(8, svcWriteProperty, 5, req))); m.apdu.typ != pduError || m.apdu.errorCode != errCodeWriteAccessDenied {
			t.Fatalf("writing state-text (index %d): %+v", idx, m.apdu)
		}
	}
}

// TestIAmVendorInPlace: the I-Am's vendor identifier, read straight into the answer's
// buffer, is the Unsigned view.unsigned reads, after whatever the buffer held, and the
// answer allocates nothing.
func TestIAmVendorInPlace(t *testing.T) {
	sv, h := testService(t, "controller")
	v := sv.view(h, time.Now())
	want := appendUnsigned(nil, v.unsigned(sv.cfg.device, propVendorIdentifier))
	if len(want) < 2 || want[len(want)-1] == 0 {
		t.Fatalf("vendor identifier %x: the profile should give a non-zero one", want)
	}
	buf := append(make([]byte, 0, 64), 0xAA, 0xBB)
	got := sv.appendIAm(buf, &v)
	if got[0] != 0xAA || got[1] != 0xBB || !bytes.HasSuffix(got, want) {
		t.Errorf("I-Am %x: want the prefix aa bb kept and the vendor %x at the end", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { got = sv.appendIAm(buf[:2], &v) }); n != 0 {
		t.Errorf("appendIAm allocates %v times", n)
	}
}
