package snmp

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// v3Request builds an authNoPriv (or noAuthNoPriv when u is nil) GET as a manager would.
func v3Request(t testing.TB, a *agent, u *user, engineID []byte, boots, etime int32, flags byte) []byte {
	t.Helper()
	oid := appendOctets(nil, tagOID, appendOIDContent(nil, mustOID(t, "1.3.6.1.2.1.1.5.0")))
	vbs := appendVB(nil, oid, []byte{tagNull, 0})
	scoped := appendScoped(nil, engineID, nil, pduGet, 99, 0, 0, vbs)
	h := v3Header{msgID: 1234, maxSize: 65507, flags: flags, engineID: engineID, boots: boots, time: etime}
	if u != nil {
		h.user = []byte(u.name)
		h.authLen = u.auth.macLen
	}
	msg, off := appendV3Message(nil, &h, scoped)
	if u != nil {
		key := localize(u.auth.hash, u.authKu, engineID)
		copy(msg[off:], u.mac(key, msg, off))
	}
	return msg
}

func TestV3Reports(t *testing.T) {
	a := newAgent(t, protocoltest.Station)
	hs := a.svc.host(a.host)
	u := a.svc.cfg.users["monitor"] // SHA-256, authNoPriv
	now := hs.engineTime(time.Now())
	tests := []struct {
		name     string
		req      []byte
		stat     int // usmStats reported, 0 for a response
		authed   bool
		wantResp bool
	}{
		{"discovery", v3Request(t, a, nil, nil, 0, 0, flagReportable), usmUnknownEngineIDs, false, true},
		{"not in time window", v3Request(t, a, u, hs.engineID, hs.boots, now+1000, flagAuth|flagReportable), usmNotInTimeWindows, true, true},
		{"wrong boots", v3Request(t, a, u, hs.engineID, hs.boots+1, now, flagAuth|flagReportable), usmNotInTimeWindows, true, true},
		{"in time", v3Request(t, a, u, hs.engineID, hs.boots, now, flagAuth|flagReportable), 0, true, true},
		{"level too low", v3Request(t, a, nil, hs.engineID, hs.boots, now, flagReportable), usmUnknownUserNames, false, true},
		{"not reportable", v3Request(t, a, nil, nil, 0, 0, 0), usmUnknownEngineIDs, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := uint32(0)
			if tt.stat > 0 {
				before = hs.usm[tt.stat].Load()
			}
			out := a.do(tt.req)
			if tt.stat > 0 && hs.usm[tt.stat].Load() != before+1 {
				t.Errorf("usmStats %d not counted", tt.stat)
			}
			if !tt.wantResp {
				if out != nil {
					t.Fatalf("unexpected reply")
				}
				return
			}
			var m message
			if err := decodeMessage(out, &m); err != nil {
				t.Fatalf("decode reply: %v", err)
			}
			if !bytes.Equal(m.usm.engineID, hs.engineID) || m.usm.boots != hs.boots || m.msgID != 1234 {
				t.Fatalf("reply header: engine %x boots %d msgID %d", m.usm.engineID, m.usm.boots, m.msgID)
			}
			if got := m.flags&flagAuth != 0; got != tt.authed {
				t.Fatalf("reply authenticated = %v, want %v", got, tt.authed)
			}
			if tt.authed && !u.verify(localize(u.auth.hash, u.authKu, hs.engineID), out, m.authOffset, m.usm.authParams) {
				t.Fatal("reply MAC does not verify")
			}
			if tt.stat == 0 {
				if m.pdu.typ != pduResponse || m.pdu.reqID != 99 || len(m.pdu.vbs) != 1 || m.pdu.vbs[0].tag != tagOctetString {
					t.Fatalf("response %+v", m.pdu)
				}
				return
			}
			if m.pdu.typ != pduReport || len(m.pdu.vbs) != 1 || !bytes.Equal(appendOctets(nil, tagOID, m.pdu.vbs[0].oid), usmStatsOID[tt.stat]) {
				t.Fatalf("report %+v", m.pdu)
			}
		})
	}
}

func TestEngineIDPerHost(t *testing.T) {
	a := newAgent(t, protocoltest.Station)
	b := newAgent(t, protocoltest.Station)
	b.host = protocoltestHost(t, protocoltest.Station, "192.0.2.11", 8)
	ha, hb := a.svc.host(a.host), b.svc.host(b.host)
	if bytes.Equal(ha.engineID, hb.engineID) {
		t.Fatalf("two hosts share engine ID %x", ha.engineID)
	}
	for _, id := range [][]byte{ha.engineID, hb.engineID} {
		siemens, _ := profiles.VendorOUIs("siemens")
		if len(id) != 11 || !bytes.Equal(id[:5], []byte{0x80, 0x00, 0x10, 0xe9, 0x03}) || !slices.Contains(siemens, profiles.OUI(id[5:8])) {
			t.Fatalf("engine ID %x is not Siemens/MAC format", id)
		}
	}
}
