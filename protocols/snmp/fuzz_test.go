package snmp

import (
	"context"
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func seedRequests(t testing.TB) [][]byte {
	return [][]byte{
		request(t, version1, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.1.1.0"}),
		request(t, version2c, "public", pduGetNext, 0, 0, vbSpec{oid: "1.3.6.1.2.1.2"}),
		request(t, version2c, "public", pduGetBulk, 1, 10, vbSpec{oid: "1.3.6.1.2.1.1.1.0"}, vbSpec{oid: "1.3"}),
		request(t, version2c, "private", pduSet, 0, 0, vbSpec{"1.3.6.1.2.1.1.6.0", tagOctetString, []byte("x")}),
	}
}

// quiet returns the default profile's agent with tarpit and evasion off and no events.
func quiet(t testing.TB) *agent {
	a := newAgent(t, protocoltest.Station)
	a.svc.cfg.tarpit = [numClasses]tarpit{}
	a.svc.lim, _ = newLimiter([numClasses][2]int{})
	a.sess.Events = nil
	return a
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range seedRequests(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m message
		if err := decodeMessage(b, &m); err != nil || m.version == version3 {
			return
		}
		// What decodes re-encodes to something that decodes the same way.
		var vbs []byte
		for _, vb := range m.pdu.vbs {
			vbs = append(vbs, vb.raw...)
		}
		out := appendCommunityMessage(nil, m.version, m.community, m.pdu.typ, m.pdu.reqID,
			int(m.pdu.errStatus), int(m.pdu.errIndex), vbs)
		var m2 message
		if err := decodeMessage(out, &m2); err != nil {
			if m.pdu.typ == pduTrapV1 {
				return
			}
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if m2.pdu.reqID != m.pdu.reqID || len(m2.pdu.vbs) != len(m.pdu.vbs) || string(m2.community) != string(m.community) {
			t.Fatalf("round trip changed the message")
		}
	})
}

func FuzzServePacket(f *testing.F) {
	for _, s := range seedRequests(f) {
		f.Add(s)
	}
	// Walks into the columns whose instance is the host's address (ipAddrTable, LLDP).
	f.Add(request(f, version2c, "public", pduGetNext, 0, 0, vbSpec{oid: "1.3.6.1.2.1.4.20.1.1"}))
	f.Add(request(f, version2c, "public", pduGetBulk, 0, 10, vbSpec{oid: "1.0.8802.1.1.2.1.3.8"}))
	f.Add(request(f, version1, "public", pduGet, 0, 0, vbSpec{oid: "1.3.6.1.2.1.4.20.1.3.192.0.2.10"}))
	a := quiet(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		replies := 0
		a.svc.ServePacket(context.Background(), a.sess, b, func(resp []byte) {
			replies++
			if len(resp) > maxMaxMsg {
				t.Fatalf("reply of %d bytes", len(resp))
			}
			var m message
			if err := decodeMessage(resp, &m); err != nil {
				t.Fatalf("agent sent an undecodable reply: %v", err)
			}
		})
		if replies > 1 {
			t.Fatalf("%d replies", replies)
		}
	})
}
