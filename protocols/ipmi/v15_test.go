package ipmi

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// v15Console is the console side of an IPMI v1.5 session, from the specification.
type v15Console struct {
	f          *flowT
	auth       byte
	pass       []byte
	id, seq    uint32
	rqSeq      byte
	activateCC byte
}

// v15Login runs Get Session Challenge and Activate Session; it returns nil when a step
// is refused (the completion code of Get Session Challenge is returned then).
func v15Login(t testing.TB, f *flowT, auth byte, user, pass string, priv byte) (*v15Console, byte) {
	t.Helper()
	name := make([]byte, 16)
	copy(name, user)
	out := f.one(appendV15NoAuth(nil, lanMsg(netFnApp, 0x39, 1, append([]byte{auth}, name...)...)))
	if out == nil {
		t.Fatal("no answer to Get Session Challenge")
	}
	_, msg, err := parseV15(out[rmcpHeaderLen:])
	if err != nil || len(msg) < 8 {
		t.Fatalf("Get Session Challenge answer %x: %v", out, err)
	}
	if cc := msg[6]; cc != 0 {
		return nil, cc
	}
	d := msg[7 : len(msg)-1]
	c := &v15Console{f: f, auth: auth, pass: []byte(pass), id: le32(d)}
	req := lanMsg(netFnApp, 0x3A, 2, append(append([]byte{auth, priv}, d[4:20]...), 0x10, 0, 0, 0)...)
	out = f.one(appendV15(nil, auth, c.id, 0, authCode(auth, c.pass, c.id, req, 0), req))
	if out == nil {
		return c, 0 // no answer: the authentication code did not verify
	}
	_, msg, err = parseV15(out[rmcpHeaderLen:])
	if err != nil {
		t.Fatalf("Activate Session answer %x: %v", out, err)
	}
	if c.activateCC = msg[6]; c.activateCC == 0 {
		c.seq = le32(msg[7+5:]) - 1
	}
	return c, 0
}

func (c *v15Console) packet(netFn, cmd byte, data ...byte) []byte {
	c.seq++
	c.rqSeq = (c.rqSeq + 1) & 0x3F
	m := lanMsg(netFn, cmd, c.rqSeq, data...)
	return appendV15(nil, c.auth, c.id, c.seq, authCode(c.auth, c.pass, c.id, m, c.seq), m)
}

func (c *v15Console) cmd(netFn, cmd byte, data ...byte) (byte, []byte, bool) {
	out := c.f.one(c.packet(netFn, cmd, data...))
	if out == nil {
		return 0, nil, false
	}
	h, msg, err := parseV15(out[rmcpHeaderLen:])
	if err != nil || h.id != c.id || !bytes.Equal(h.authCode, authCode(c.auth, c.pass, c.id, msg, h.seq)) {
		c.f.t.Fatalf("answer %x: bad framing or authentication code (%v)", out, err)
	}
	return msg[6], msg[7 : len(msg)-1], true
}

func TestV15Sessions(t *testing.T) {
	svc, h := unitBMC(t, func(s string) string {
		return strings.Replace(s, "<user_list>", "<auth_types>none,md5,password</auth_types><user_list>", 1)
	})
	for _, auth := range []byte{authNone, authMD5, authPassword} {
		f := newFlow(t, svc, h, "198.51.100.7:40000")
		c, cc := v15Login(t, f, auth, "Administrator", "Password", privAdmin)
		if c == nil || c.activateCC != 0 {
			t.Fatalf("auth %d: login refused (%#x)", auth, cc)
		}
		if cc, d, ok := c.cmd(netFnApp, 0x3B, privAdmin); !ok || cc != 0 || d[0] != privAdmin {
			t.Fatalf("auth %d: Set Session Privilege %v %#x", auth, ok, cc)
		}
		if cc, d, ok := c.cmd(netFnApp, 0x01); !ok || cc != 0 || d[4] != 0x02 {
			t.Fatalf("auth %d: Get Device ID %v %#x %x", auth, ok, cc, d)
		}
		replay := c.packet(netFnChassis, 0x01)
		if len(f.send(replay)) != 1 || len(f.send(replay)) != 0 {
			t.Errorf("auth %d: a replayed message was answered", auth)
		}
		if auth != authNone {
			bad := c.packet(netFnChassis, 0x01)
			bad[rmcpHeaderLen+9] ^= 1 // the authentication code
			if len(f.send(bad)) != 0 {
				t.Errorf("auth %d: a message with a wrong authentication code was answered", auth)
			}
		}
		if cc, _, ok := c.cmd(netFnApp, 0x3C, binary.LittleEndian.AppendUint32(nil, c.id)...); !ok || cc != 0 {
			t.Fatalf("auth %d: Close Session %v %#x", auth, ok, cc)
		}
		if _, _, ok := c.cmd(netFnApp, 0x01); ok {
			t.Errorf("auth %d: a closed session answers", auth)
		}
	}
	f := newFlow(t, svc, h, "198.51.100.7:40001")
	// A wrong password: Activate Session's code does not verify, nothing is answered.
	if c, _ := v15Login(t, f, authMD5, "Administrator", "guess", privAdmin); c == nil || c.seq != 0 {
		t.Errorf("wrong password: %+v", c)
	}
	if c, cc := v15Login(t, f, authMD5, "ghost", "x", privAdmin); c != nil || cc != ccInvalidUserName {
		t.Errorf("unknown user: %#x", cc)
	}
	if c, cc := v15Login(t, f, authMD5, "", "x", privAdmin); c != nil || cc != ccNullUserName {
		t.Errorf("null user: %#x", cc)
	}
	if c, _ := v15Login(t, f, authMD5, "User1", "U1Password", privAdmin); c == nil || c.activateCC != ccPrivLimit {
		t.Errorf("privilege above the user's: %+v", c)
	}
	if hs := svc.host(h); hs.sessions != 0 {
		t.Errorf("%d sessions left", hs.sessions)
	}
	results := map[any]int{}
	for _, e := range f.events.OfType("ipmi.auth") {
		results[fieldOf(e, "result")]++
	}
	if results["wrong password (IPMI v1.5)"] != 1 || results["invalid user name (IPMI v1.5)"] != 1 {
		t.Errorf("auth results %v", results)
	}
}

func TestV15OffByDefault(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	if c, cc := v15Login(t, f, authMD5, "Administrator", "Password", privAdmin); c != nil || cc != ccInvalidField {
		t.Fatalf("v1.5 challenge with v1.5 off: %#x", cc)
	}
}

// TestV15SessionIsNoRAKPSession: RAKP messages naming a v1.5 challenge's session id are
// refused, so the RMCP+ handshake cannot complete a session that never chose a suite.
func TestV15SessionIsNoRAKPSession(t *testing.T) {
	svc, h := unitBMC(t, withV15)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	name := make([]byte, 16)
	copy(name, "Administrator")
	out := f.one(appendV15NoAuth(nil, lanMsg(netFnApp, 0x39, 1, append([]byte{authMD5}, name...)...)))
	_, msg, _ := parseV15(out[rmcpHeaderLen:])
	id := le32(msg[7:])
	r1 := binary.LittleEndian.AppendUint32([]byte{2, 0, 0, 0}, id)
	r1 = append(r1, make([]byte, 16)...)
	r1 = append(r1, 0x14, 0, 0, 13)
	r1 = append(r1, "Administrator"...)
	_, _, p := v2Payload(t, f.one(v2Packet(payloadRAKP1, 0, 0, r1)), 0)
	if p[1] != rmcpInvalidSession {
		t.Fatalf("RAKP 1 for a v1.5 session: status %#x", p[1])
	}
	r3 := binary.LittleEndian.AppendUint32([]byte{3, 0, 0, 0}, id)
	_, _, p = v2Payload(t, f.one(v2Packet(payloadRAKP3, 0, 0, r3)), 0)
	if p[1] != rmcpInvalidSession {
		t.Fatalf("RAKP 3 for a v1.5 session: status %#x", p[1])
	}
}
