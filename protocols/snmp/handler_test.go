package snmp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// agent is a configured service and one host, called directly without sockets.
type agent struct {
	svc  *service
	host *protocols.Host
	sess *protocols.Session
	rec  *protocoltest.Recorder
}

func newAgent(t testing.TB, profile string) *agent {
	t.Helper()
	p := protocoltest.Profile(t, profile)
	svc := protocoltest.ConfigureWith(t, protocol{}, p, testOptions()).(*service)
	h := protocoltest.Host(p, netip.MustParseAddr("192.0.2.10"), 7)
	rec := &protocoltest.Recorder{}
	return &agent{svc: svc, host: h, rec: rec, sess: &protocols.Session{Protocol: "snmp", Transport: protocols.UDP, Host: h,
		Remote: netip.MustParseAddrPort("198.51.100.7:40000"), Events: rec, MaxPayload: 4096}}
}

// do serves one request and returns the reply, or nil when none came within the default
// profile's largest tarpit.
func (a *agent) do(req []byte) []byte {
	ch := make(chan []byte, 1)
	a.svc.ServePacket(context.Background(), a.sess, req, func(b []byte) { ch <- append([]byte(nil), b...) })
	select {
	case out := <-ch:
		return out
	case <-time.After(200 * time.Millisecond):
		return nil
	}
}

type vbSpec struct {
	oid string
	tag byte
	val []byte
}

// request encodes a v1/v2c request.
func request(t testing.TB, version int32, community string, typ byte, es, ei int, vbs ...vbSpec) []byte {
	t.Helper()
	var list []byte
	for _, v := range vbs {
		oidTLV := appendOctets(nil, tagOID, appendOIDContent(nil, mustOID(t, v.oid)))
		tag, val := v.tag, v.val
		if tag == 0 {
			tag = tagNull
		}
		list = appendVB(list, oidTLV, appendOctets(nil, tag, val))
	}
	return appendCommunityMessage(nil, version, []byte(community), typ, 4711, es, ei, list)
}

func decodeResp(t testing.TB, b []byte) *gosnmp.SnmpPacket {
	t.Helper()
	if b == nil {
		t.Fatal("no response")
	}
	p, err := gosnmp.Default.SnmpDecodePacket(b)
	if err != nil {
		t.Fatalf("gosnmp cannot decode the response: %v", err)
	}
	if p.RequestID != 4711 || p.PDUType != gosnmp.GetResponse {
		t.Fatalf("response id %d type %v", p.RequestID, p.PDUType)
	}
	return p
}

func TestHandlerErrors(t *testing.T) {
	a := newAgent(t, protocoltest.Station)
	str := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name      string
		version   int32
		community string
		typ       byte
		vbs       []vbSpec
		status    gosnmp.SNMPError
		index     uint8
		types     []gosnmp.Asn1BER
	}{
		{"v2c get unknown object", version2c, "public", pduGet, []vbSpec{{oid: "1.3.6.1.2.1.1.1.0"}, {oid: "1.3.6.1.4.1.4329.9.9.0"}},
			gosnmp.NoError, 0, []gosnmp.Asn1BER{gosnmp.OctetString, gosnmp.NoSuchObject}},
		{"v2c get unknown instance", version2c, "public", pduGet, []vbSpec{{oid: "1.3.6.1.2.1.1.1.1"}},
			gosnmp.NoError, 0, []gosnmp.Asn1BER{gosnmp.NoSuchInstance}},
		{"v1 get unknown", version1, "public", pduGet, []vbSpec{{oid: "1.3.6.1.2.1.1.1.0"}, {oid: "1.3.6.1.2.1.1.1.1"}},
			gosnmp.NoSuchName, 2, []gosnmp.Asn1BER{gosnmp.Null, gosnmp.Null}},
		{"v2c getnext past end", version2c, "public", pduGetNext, []vbSpec{{oid: "1.3.6.1.6.3.15.1.1.6.0"}},
			gosnmp.NoError, 0, []gosnmp.Asn1BER{gosnmp.EndOfMibView}},
		{"v1 getnext past end", version1, "public", pduGetNext, []vbSpec{{oid: "2.1"}},
			gosnmp.NoSuchName, 1, []gosnmp.Asn1BER{gosnmp.Null}},
		{"v2c set read-only object", version2c, "private", pduSet, []vbSpec{{"1.3.6.1.2.1.1.5.0", tagOctetString, str("x")}, {"1.3.6.1.2.1.1.1.0", tagOctetString, str("x")}},
			gosnmp.NotWritable, 2, []gosnmp.Asn1BER{gosnmp.OctetString, gosnmp.OctetString}},
		{"v1 set read-only object", version1, "private", pduSet, []vbSpec{{"1.3.6.1.2.1.1.1.0", tagOctetString, str("x")}},
			gosnmp.NoSuchName, 1, []gosnmp.Asn1BER{gosnmp.OctetString}},
		{"v2c set wrong type", version2c, "private", pduSet, []vbSpec{{"1.3.6.1.2.1.1.6.0", tagInteger, []byte{1}}},
			gosnmp.WrongType, 1, []gosnmp.Asn1BER{gosnmp.Integer}},
		{"v1 set wrong type", version1, "private", pduSet, []vbSpec{{"1.3.6.1.2.1.1.6.0", tagInteger, []byte{1}}},
			gosnmp.BadValue, 1, []gosnmp.Asn1BER{gosnmp.Integer}},
		{"v2c set no creation", version2c, "private", pduSet, []vbSpec{{"1.3.6.1.2.1.1.6.7", tagOctetString, str("x")}},
			gosnmp.NoCreation, 1, []gosnmp.Asn1BER{gosnmp.OctetString}},
		{"v1 set no creation", version1, "private", pduSet, []vbSpec{{"1.3.6.1.2.1.1.6.7", tagOctetString, str("x")}},
			gosnmp.NoSuchName, 1, []gosnmp.Asn1BER{gosnmp.OctetString}},
		{"v2c set too long", version2c, "private", pduSet, []vbSpec{{"1.3.6.1.2.1.1.6.0", tagOctetString, make([]byte, 300)}},
			gosnmp.WrongLength, 1, []gosnmp.Asn1BER{gosnmp.OctetString}},
		{"v2c set read community", version2c, "public", pduSet, []vbSpec{{"1.3.6.1.2.1.1.6.0", tagOctetString, str("x")}},
			gosnmp.NoAccess, 1, []gosnmp.Asn1BER{gosnmp.OctetString}},
		{"v1 set read community", version1, "public", pduSet, []vbSpec{{"1.3.6.1.2.1.1.6.0", tagOctetString, str("x")}},
			gosnmp.ReadOnly, 1, []gosnmp.Asn1BER{gosnmp.OctetString}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeResp(t, a.do(request(t, tt.version, tt.community, tt.typ, 0, 0, tt.vbs...)))
			if p.Error != tt.status || p.ErrorIndex != tt.index {
				t.Fatalf("error %v index %d, want %v %d", p.Error, p.ErrorIndex, tt.status, tt.index)
			}
			if len(p.Variables) != len(tt.types) {
				t.Fatalf("%d varbinds, want %d", len(p.Variables), len(tt.types))
			}
			for i, v := range p.Variables {
				if v.Type != tt.types[i] {
					t.Errorf("varbind %d type %v, want %v", i, v.Type, tt.types[i])
				}
			}
		})
	}
	// A failed multi-varbind SET writes nothing.
	before, _ := a.host.Databus.GetString("sysContact")
	decodeResp(t, a.do(request(t, version2c, "private", pduSet, 0, 0,
		vbSpec{"1.3.6.1.2.1.1.4.0", tagOctetString, str("changed")}, vbSpec{"1.3.6.1.2.1.1.3.0", tagTimeTicks, []byte{1}})))
	if after, _ := a.host.Databus.GetString("sysContact"); after != before {
		t.Fatalf("failed SET changed sysContact to %q", after)
	}
}

func TestDrops(t *testing.T) {
	a := newAgent(t, protocoltest.Station)
	tests := []struct {
		name    string
		req     []byte
		counter int
	}{
		{"bad community", request(t, version2c, "secret", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"}), snmpInBadCommunityNames},
		{"bad version", request(t, 2, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"}), snmpInBadVersions},
		{"truncated", request(t, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"})[:20], snmpInASNParseErrs},
		{"bad OID", []byte{0x30, 0x1a, 0x02, 0x01, 0x01, 0x04, 0x06, 'p', 'u', 'b', 'l', 'i', 'c', 0xa1, 0x0d, 0x02, 0x01, 0x01,
			0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x02, 0x30, 0x00}, snmpInASNParseErrs},
		{"v1 getbulk", request(t, version1, "public", pduGetBulk, 0, 5, vbSpec{oid: "1.3"}), 0},
		{"response PDU", request(t, version2c, "public", pduResponse, 0, 0, vbSpec{oid: "1.3"}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := a.svc.host(a.host)
			var before uint32
			if tt.counter > 0 {
				before = hs.snmp[tt.counter].Load()
			}
			if out := a.do(tt.req); out != nil {
				t.Fatalf("got a reply %x", out)
			}
			if tt.counter > 0 && hs.snmp[tt.counter].Load() != before+1 {
				t.Fatalf("counter %d not incremented", tt.counter)
			}
		})
	}
	// The bad community shows up in the snmp group, as a real agent reports it.
	p := decodeResp(t, a.do(request(t, version2c, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.11.4.0"})))
	if gosnmp.ToBigInt(p.Variables[0].Value).Int64() != 1 {
		t.Fatalf("snmpInBadCommunityNames = %v", p.Variables[0].Value)
	}
}

func TestGetBulkBounded(t *testing.T) {
	a := newAgent(t, protocoltest.Station)
	tests := []struct {
		name       string
		nonRep     int
		maxRep     int
		oids       []string
		wantVBs    int // exact count, or -1 for "fills the size limit"
		wantEndAll bool
	}{
		{"one repetition", 0, 1, []string{"1.3.6.1.2.1.1"}, 1, false},
		{"non-repeater and repeater", 1, 3, []string{"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1"}, 4, false},
		{"huge max-repetitions", 0, 100000, []string{"1.3"}, -1, false},
		{"past the end", 0, 5, []string{"1.3.6.1.6.3.15.1.1.6.0"}, 1, true},
		{"zero repetitions", 0, 0, []string{"1.3"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var vbs []vbSpec
			for _, o := range tt.oids {
				vbs = append(vbs, vbSpec{oid: o})
			}
			out := a.do(request(t, version2c, "public", pduGetBulk, tt.nonRep, tt.maxRep, vbs...))
			if len(out) > a.svc.cfg.maxMsg {
				t.Fatalf("response of %d bytes exceeds %d", len(out), a.svc.cfg.maxMsg)
			}
			p := decodeResp(t, out)
			if tt.wantVBs >= 0 && len(p.Variables) != tt.wantVBs {
				t.Fatalf("%d varbinds, want %d", len(p.Variables), tt.wantVBs)
			}
			if tt.wantVBs < 0 && (len(p.Variables) < 20 || len(out) < a.svc.cfg.maxMsg-200) {
				t.Fatalf("%d varbinds in %d bytes: not filled up to the limit", len(p.Variables), len(out))
			}
			if tt.wantEndAll && p.Variables[0].Type != gosnmp.EndOfMibView {
				t.Fatalf("want endOfMibView, got %v", p.Variables[0].Type)
			}
		})
	}
}

func TestEventFields(t *testing.T) {
	a := newAgent(t, protocoltest.Station)
	a.do(request(t, version2c, "private", pduSet, 0, 0, vbSpec{"1.3.6.1.2.1.1.6.0", tagOctetString, []byte("Halle 4")}))
	a.do(request(t, version1, "wrong", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"}))
	ev := a.rec.OfType("snmp.request")
	if len(ev) != 2 {
		t.Fatalf("%d events", len(ev))
	}
	for _, f := range []struct {
		key string
		val any
	}{{"version", "v2c"}, {"community", "private"}, {"pdu", "set"}, {"oids", []string{"1.3.6.1.2.1.1.6.0"}},
		{"error_status", "noError"}, {"set_values", []string{"Halle 4"}}} {
		if !hasField(ev[0].Fields, f.key, f.val) {
			t.Errorf("set event lacks %s=%v: %+v", f.key, f.val, ev[0].Fields)
		}
	}
	if !hasField(ev[1].Fields, "dropped", "bad community") || !hasField(ev[1].Fields, "community", "wrong") || ev[1].Response != nil {
		t.Errorf("bad community event: %+v", ev[1])
	}
}

func protocoltestHost(t testing.TB, profile, addr string, seed uint64) *protocols.Host {
	t.Helper()
	return protocoltest.Host(protocoltest.Profile(t, profile), netip.MustParseAddr(addr), seed)
}

// An unverified source's GETBULK shrinks to fit the sensor's amplification bound (every
// v1/v2c source is unverified: a community proves nothing), as RFC 3416 lets it.
func TestGetBulkWithinAmplificationBound(t *testing.T) {
	for _, amp := range []float64{10, 20} {
		a := newAgent(t, protocoltest.Station)
		a.sess.Amplification = amp
		req := request(t, version2c, "public", pduGetBulk, 0, 50, vbSpec{oid: "1.3.6.1.2.1"})
		a.sess.Received(len(req))
		out := a.do(req)
		bound := int(amp * float64(len(req)))
		if limit := bound; len(out) > limit {
			t.Fatalf("amplification %v: %d bytes out for %d in (limit %d)", amp, len(out), len(req), limit)
		}
		if p := decodeResp(t, out); len(p.Variables) < 2 || p.Error != gosnmp.NoError {
			t.Fatalf("amplification %v: %d varbinds, error %v", amp, len(p.Variables), p.Error)
		}
	}
}
