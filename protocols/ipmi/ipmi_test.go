package ipmi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func unitBMC(t testing.TB, edit func(string) string) (*service, *protocols.Host) {
	t.Helper()
	svc, p := testService(t, edit)
	return svc, protocoltest.Host(p, netip.MustParseAddr("192.0.2.23"), 4242)
}

func fieldOf(e *protocols.Event, key string) any {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

func TestPresencePing(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	for _, tc := range []struct {
		name, req string
		replies   []string
	}{
		{"ping", "0600ff06 000011be 802a0000", []string{"0600ff06 000011be 402a0010 000011be 00000000 8100 000000000000"}},
		{"ping wanting an ACK", "06000506 000011be 80070000", []string{"06000586", "06000506 000011be 40070010 000011be 00000000 8100 000000000000"}},
		{"other ASF message", "0600ff06 000011be 81070000", nil},
		{"ACK", "06000586", nil},
		{"RMCP 0.9", "0500ff06 000011be 802a0000", nil},
		{"short", "0600ff", nil},
		{"OEM class", "0600ff08 000011be 802a0000", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := f.send(unhex(t, tc.req))
			if len(out) != len(tc.replies) {
				t.Fatalf("%d replies %x, want %d", len(out), out, len(tc.replies))
			}
			for i, want := range tc.replies {
				if !bytes.Equal(out[i], unhex(t, want)) {
					t.Errorf("reply %d: %x, want %s", i, out[i], want)
				}
			}
		})
	}
}

func TestChannelAuthCapsNmap(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	// nmap's ipmi-version probe: IPMI v1.5 session-less Get Channel Authentication
	// Capabilities, channel "this one" with the IPMI v2.0 data bit, administrator.
	req := unhex(t, "0600ff07 00 00000000 00000000 09 2018c8 81 00 38 8e04 b5")
	want := unhex(t, "0600ff07 00 00000000 00000000 10 811c63 20 00 38 00 01 80 04 02 000000 00 21")
	got := f.one(req)
	if !bytes.Equal(got, want) {
		t.Fatalf("reply %x\nwant       %x", got, want)
	}
	// The same request as an RMCP+ session-less message.
	got = f.one(v2Packet(payloadIPMI, 0, 0, lanMsg(netFnApp, 0x38, 0, 0x8e, 0x04)))
	pt, id, p := v2Payload(t, got, 0)
	if pt != 0 || id != 0 || !bytes.Equal(p[6:len(p)-1], unhex(t, "00 01 80 04 02 000000 00")) {
		t.Fatalf("v2 reply %x", got)
	}
}

func TestSessionlessOnlyPreSessionCommands(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	for _, cmd := range []byte{0x01, 0x44, 0x46} { // Get Device ID, Get User Access, Get User Name
		pkt := appendV15NoAuth(nil, lanMsg(netFnApp, cmd, 1, 1, 1))
		if out := f.send(pkt); len(out) != 0 {
			t.Errorf("cmd %#x outside a session answered %x", cmd, out)
		}
		if out := f.send(v2Packet(payloadIPMI, 0, 0, lanMsg(netFnApp, cmd, 1, 1, 1))); len(out) != 0 {
			t.Errorf("cmd %#x outside a session (RMCP+) answered %x", cmd, out)
		}
	}
	// Get System GUID is a pre-session command.
	out := f.one(appendV15NoAuth(nil, lanMsg(netFnApp, 0x37, 1)))
	if len(out) != 4+10+8+16 {
		t.Fatalf("Get System GUID: %x", out)
	}
}

func TestGetChannelCipherSuites(t *testing.T) {
	for _, tc := range []struct {
		name, suites string
		index        byte
		want         string
	}{
		{"default page 0", "", 0x80, "01 c001014080 c002014180 c003014181 c0"},
		{"default page 1", "", 0x81, "01 0f034080 c010034480 c011034481"},
		{"default page 2", "", 0x82, "01"},
		{"suite 0 enabled", "0,3", 0x80, "01 c000004080 c003014181"},
		{"algorithms", "3,17", 0x00, "01 01 41 81 03 44"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := func(s string) string { return s }
			if tc.suites != "" {
				edit = withSuites(tc.suites)
			}
			svc, h := unitBMC(t, edit)
			f := newFlow(t, svc, h, "198.51.100.7:40000")
			_, _, p := v2Payload(t, f.one(v2Packet(payloadIPMI, 0, 0, lanMsg(netFnApp, 0x54, 0, 0x0e, 0x00, tc.index))), 0)
			if p[6] != 0 {
				t.Fatalf("completion code %#x", p[6])
			}
			if got, want := p[7:len(p)-1], unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Errorf("records %x, want %x", got, want)
			}
		})
	}
}

func TestHandshakeEverySuite(t *testing.T) {
	svc, h := unitBMC(t, withSuites("0,1,2,3,6,7,8,15,16,17"))
	for _, id := range []int{0, 1, 2, 3, 6, 7, 8, 15, 16, 17} {
		t.Run(fmt.Sprint(id), func(t *testing.T) {
			f := newFlow(t, svc, h, fmt.Sprintf("198.51.100.7:%d", 41000+id))
			c := login(t, f, id, "Administrator", "Password", privAdmin)
			cc, d, ok := c.cmd(netFnApp, 0x01)
			want := unhex(t, "20 01 01 74 02 9f 7c2a00 1709 00000000")
			if !ok || cc != 0 || !bytes.Equal(d, want) {
				t.Fatalf("Get Device ID: %v %#x %x, want %x", ok, cc, d, want)
			}
			if cc, d, ok := c.cmd(netFnChassis, 0x01); !ok || cc != 0 || len(d) != 3 {
				t.Fatalf("Get Chassis Status: %v %#x %x", ok, cc, d)
			}
			if cc, _, ok := c.cmd(netFnApp, 0x3C, binary.LittleEndian.AppendUint32(nil, c.bmcID)...); !ok || cc != 0 {
				t.Fatalf("Close Session: %v %#x", ok, cc)
			}
			if _, _, ok := c.cmd(netFnApp, 0x01); ok {
				t.Fatal("a closed session still answers")
			}
		})
	}
}

func TestRAKP2DisclosesTheHash(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	su, _ := lookupSuite(3)
	c := &console{f: f, su: su, user: []byte("Administrator"), pass: []byte("Password")}
	if !c.handshake() || !c.rakp2HMACValid {
		t.Fatalf("handshake: rakp2 valid %v", c.rakp2HMACValid)
	}
	// Recompute RAKP 2's HMAC-SHA1 the way ipmi_dumphashes-style crackers do, from the
	// wire fields only.
	var rakp2 *protocols.Event
	for _, e := range f.events.OfType("ipmi.request") {
		if fieldOf(e, "kind") == "rakp1" {
			rakp2 = e
		}
	}
	if rakp2 == nil || fieldOf(rakp2, "hash_disclosed") != true || fieldOf(rakp2, "user") != "Administrator" {
		t.Fatalf("RAKP 1 event %+v", rakp2)
	}
	p := rakp2.Response[rmcpHeaderLen+v2HeaderLen:]
	m := hmac.New(sha1.New, []byte("Password"))
	m.Write(binary.LittleEndian.AppendUint32(nil, c.consoleID))
	m.Write(binary.LittleEndian.AppendUint32(nil, c.bmcID))
	m.Write(c.rc[:])
	m.Write(p[8:24])  // Rm
	m.Write(p[24:40]) // GUIDm
	m.Write([]byte{0x14, 13})
	m.Write([]byte("Administrator"))
	if !bytes.Equal(m.Sum(nil), p[40:]) {
		t.Fatalf("RAKP 2 HMAC %x is not HMAC-SHA1(password, …)", p[40:])
	}
	auth := f.events.OfType("ipmi.auth")
	if len(auth) != 1 || fieldOf(auth[0], "password_ok") != true {
		t.Fatalf("auth events %+v", auth)
	}
}

func TestRAKPFailures(t *testing.T) {
	for _, tc := range []struct {
		name, user, pass string
		role             byte
		rakp2, rakp4     byte
		result           string
		userKnown        bool
	}{
		{"unknown user", "root", "calvin", 0, rmcpUnauthorizedName, 0, "unauthorized name", false},
		{"inactive user", "Operator", "OpPassword", 0, rmcpUnauthorizedName, 0, "unauthorized name", true},
		{"wrong password", "Administrator", "admin", 0, 0, rmcpInvalidICV, "wrong password in RAKP 3", true},
		{"role above the user's, username/privilege lookup", "User1", "U1Password", privAdmin, rmcpUnauthorizedRole, 0, "", true},
		{"name too long", "ABCDEFGHIJKLMNOPQ", "x", 0, rmcpInvalidNameLen, 0, "", false},
		{"no role", "Administrator", "Password", roleNameOnly, rmcpInvalidRole, 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, h := unitBMC(t, nil)
			f := newFlow(t, svc, h, "198.51.100.7:40000")
			su, _ := lookupSuite(17)
			c := &console{f: f, su: su, user: []byte(tc.user), pass: []byte(tc.pass), role: tc.role}
			if c.handshake() {
				t.Fatal("handshake succeeded")
			}
			if c.rakp2Status != tc.rakp2 || c.rakp4Status != tc.rakp4 {
				t.Fatalf("RAKP 2 status %#x, RAKP 4 status %#x; want %#x, %#x", c.rakp2Status, c.rakp4Status, tc.rakp2, tc.rakp4)
			}
			if tc.result != "" {
				auth := f.events.OfType("ipmi.auth")
				if len(auth) != 1 || fieldOf(auth[0], "result") != tc.result || fieldOf(auth[0], "password_ok") != false ||
					fieldOf(auth[0], "user") != tc.user || fieldOf(auth[0], "user_known") != tc.userKnown {
					t.Fatalf("auth events %+v", auth)
				}
			}
			if hs := svc.host(h); hs.sessions != 0 {
				t.Errorf("%d sessions left on the host", hs.sessions)
			}
		})
	}
}

func TestAbandonedAfterRAKP2IsReported(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	su, _ := lookupSuite(3)
	// Open Session and RAKP 1 only, as hash collectors do.
	c := &console{f: f, su: su, user: []byte("User1"), consoleID: 7, role: roleNameOnly | privUser}
	req := []byte{1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 8, 1, 0, 0, 0, 1, 0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0}
	_, _, p := v2Payload(t, f.one(v2Packet(payloadOpenReq, 0, 0, req)), 0)
	c.bmcID = le32(p[8:])
	r1 := binary.LittleEndian.AppendUint32([]byte{2, 0, 0, 0}, c.bmcID)
	r1 = append(r1, make([]byte, 16)...)
	r1 = append(r1, c.role, 0, 0, 5)
	r1 = append(r1, "User1"...)
	if _, _, p := v2Payload(t, f.one(v2Packet(payloadRAKP1, 0, 0, r1)), 0); p[1] != 0 || len(p) != 60 {
		t.Fatalf("RAKP 2 %x", p)
	}
	if n := len(f.events.OfType("ipmi.auth")); n != 0 {
		t.Fatalf("%d auth events before the flow ended", n)
	}
	f.sess.Close()
	auth := f.events.OfType("ipmi.auth")
	if len(auth) != 1 || fieldOf(auth[0], "result") != "abandoned after RAKP 2" || fieldOf(auth[0], "user") != "User1" {
		t.Fatalf("auth events %+v", auth)
	}
	if hs := svc.host(h); hs.sessions != 0 {
		t.Errorf("%d sessions left on the host", hs.sessions)
	}
}

func TestOpenSessionNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		alg     [3]byte
		suites  string
		status  byte
		payload int
	}{
		{"suite 3", [3]byte{1, 1, 1}, "", 0, 36},
		{"suite 17", [3]byte{3, 4, 1}, "", 0, 36},
		{"cipher zero refused", [3]byte{0, 0, 0}, "", rmcpInvalidAuthAlg, 12},
		{"cipher zero enabled", [3]byte{0, 0, 0}, "0,3", 0, 36},
		{"MD5", [3]byte{2, 2, 0}, "", rmcpInvalidAuthAlg, 12},
		{"SHA1 with SHA256 integrity", [3]byte{1, 4, 1}, "", rmcpInvalidIntegAlg, 12},
		{"xRC4", [3]byte{1, 1, 2}, "", rmcpInvalidConfAlg, 12},
		{"SHA1 and AES but no integrity", [3]byte{1, 0, 1}, "", rmcpNoSuiteMatch, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := func(s string) string { return s }
			if tc.suites != "" {
				edit = withSuites(tc.suites)
			}
			svc, h := unitBMC(t, edit)
			f := newFlow(t, svc, h, "198.51.100.7:40000")
			req := []byte{9, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 8, tc.alg[0], 0, 0, 0, 1, 0, 0, 8, tc.alg[1], 0, 0, 0, 2, 0, 0, 8, tc.alg[2], 0, 0, 0}
			pt, _, p := v2Payload(t, f.one(v2Packet(payloadOpenReq, 0, 0, req)), 0)
			if pt != payloadOpenResp || p[1] != tc.status || len(p) != tc.payload || le32(p[4:]) != 0x04030201 {
				t.Fatalf("reply %x: status %#x, %d bytes; want %#x, %d", p, p[1], len(p), tc.status, tc.payload)
			}
		})
	}
}

func TestHostileSessionTraffic(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	c := login(t, f, 3, "Administrator", "Password", privAdmin)
	pkt := c.packet(netFnChassis, 0x01)
	if cc, _, ok := c.open(f.one(pkt), netFnChassis, 0x01); !ok || cc != 0 {
		t.Fatal("first request not answered")
	}
	if out := f.send(pkt); len(out) != 0 {
		t.Error("a replayed packet was answered")
	}
	bad := c.packet(netFnChassis, 0x01)
	bad[len(bad)-1] ^= 1
	if out := f.send(bad); len(out) != 0 {
		t.Error("a packet with a wrong integrity code was answered")
	}
	far := c.packetSeq(c.seq+100, netFnChassis, 0x01)
	if out := f.send(far); len(out) != 0 {
		t.Error("a packet far ahead of the window was answered")
	}
	plain := v2Packet(payloadIPMI, c.bmcID, c.seq+1, lanMsg(netFnChassis, 0x01, 1))
	if out := f.send(plain); len(out) != 0 {
		t.Error("an unauthenticated packet in an integrity session was answered")
	}
	other := c.packet(netFnChassis, 0x01)
	binary.LittleEndian.PutUint32(other[rmcpHeaderLen+2:], c.bmcID+1)
	if out := f.send(other); len(out) != 0 {
		t.Error("a packet for another session id was answered")
	}
	// Slightly out of order within the window is fine, once.
	a, b := c.packet(netFnChassis, 0x01), c.packet(netFnChassis, 0x01)
	if out := f.send(b); len(out) != 1 {
		t.Error("in-window packet not answered")
	}
	if out := f.send(a); len(out) != 1 {
		t.Error("earlier in-window packet not answered")
	}
	if out := f.send(a); len(out) != 0 {
		t.Error("earlier in-window packet answered twice")
	}
	// The session still works.
	if cc, _, ok := c.cmd(netFnChassis, 0x01); !ok || cc != 0 {
		t.Fatal("session broken by hostile packets")
	}
}

func TestCommandErrors(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	user := login(t, f, 17, "User1", "U1Password", privUser)
	for _, tc := range []struct {
		name       string
		netFn, cmd byte
		data       []byte
		cc         byte
	}{
		{"unknown command", netFnApp, 0x99, nil, ccInvalidCommand},
		{"unknown netfn", 0x30, 0x01, nil, ccInvalidCommand},
		{"user may not switch power", netFnChassis, 0x02, []byte{0}, ccInsufficientPriv},
		{"user may not list users", netFnApp, 0x46, []byte{1}, ccInsufficientPriv},
		{"bad length", netFnApp, 0x01, []byte{1}, ccBadLength},
		{"short", netFnSensor, 0x2D, nil, ccBadLength},
		{"no such sensor", netFnSensor, 0x2D, []byte{0xEE}, ccNotPresent},
		{"privilege above the limit", netFnApp, 0x3B, []byte{privAdmin}, ccPrivExceeded},
		{"close another session", netFnApp, 0x3C, []byte{1, 2, 3, 4}, ccInvalidSessionID},
		{"SOL refused", netFnApp, 0x48, []byte{1, 1, 0, 0, 0, 0}, ccPrivExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, d, ok := user.cmd(tc.netFn, tc.cmd, tc.data...)
			if !ok || cc != tc.cc || len(d) != 0 {
				t.Fatalf("%v cc %#x data %x, want cc %#x", ok, cc, d, tc.cc)
			}
		})
	}
}

func TestChassisPowerPerHost(t *testing.T) {
	svc, p := testService(t, nil)
	h1 := protocoltest.Host(p, netip.MustParseAddr("192.0.2.1"), 1)
	h2 := protocoltest.Host(p, netip.MustParseAddr("192.0.2.2"), 2)
	a := login(t, newFlow(t, svc, h1, "198.51.100.7:40000"), 3, "Administrator", "Password", privAdmin)
	b := login(t, newFlow(t, svc, h2, "198.51.100.7:40000"), 3, "Administrator", "Password", privAdmin)
	a2 := login(t, newFlow(t, svc, h1, "198.51.100.8:40000"), 17, "Administrator", "Password", privAdmin)
	power := func(c *console) byte {
		cc, d, ok := c.cmd(netFnChassis, 0x01)
		if !ok || cc != 0 {
			t.Fatal("chassis status failed")
		}
		return d[0] & 1
	}
	if cc, _, _ := a.cmd(netFnChassis, 0x02, 0x00); cc != 0 {
		t.Fatalf("power down: %#x", cc)
	}
	if power(a) != 0 || power(a2) != 0 || power(b) != 1 {
		t.Fatal("power state is not per host")
	}
	if cc, _, _ := a2.cmd(netFnChassis, 0x02, 0x02); cc != ccNotInState {
		t.Fatalf("power cycle while off: %#x", cc)
	}
	if cc, _, _ := a2.cmd(netFnChassis, 0x02, 0x01); cc != 0 || power(a) != 1 {
		t.Fatal("power up from a second session not seen by the first")
	}
	if cc, d, _ := a.cmd(netFnApp, 0x07); cc != 0 || d[0] != 0 {
		t.Fatalf("ACPI state %x", d)
	}
}

func TestSessionLimits(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	open := func(f *flowT, id uint32) byte {
		req := []byte{9, 0, 0, 0}
		req = binary.LittleEndian.AppendUint32(req, id)
		req = append(req, 0, 0, 0, 8, 1, 0, 0, 0, 1, 0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0)
		_, _, p := v2Payload(t, f.one(v2Packet(payloadOpenReq, 0, 0, req)), 0)
		return p[1]
	}
	for i := range maxSessionsPerFlow {
		if st := open(f, uint32(i+1)); st != 0 {
			t.Fatalf("session %d refused: %#x", i, st)
		}
	}
	if st := open(f, 100); st != rmcpNoResources {
		t.Fatalf("session past the flow's bound: status %#x", st)
	}
	// Retransmitting an Open Session Request gets the same answer, not a new session.
	if st := open(f, 1); st != 0 {
		t.Fatalf("retransmission: %#x", st)
	}
	g := newFlow(t, svc, h, "198.51.100.7:40001")
	for i := maxSessionsPerFlow; i < svc.cfg.maxPerHost; i++ {
		if st := open(g, uint32(i+1)); st != 0 {
			t.Fatalf("session %d refused: %#x", i, st)
		}
	}
	if st := open(newFlow(t, svc, h, "198.51.100.9:1"), 999); st != rmcpNoResources {
		t.Fatalf("session past the host's bound: status %#x", st)
	}
	f.sess.Close()
	if st := open(newFlow(t, svc, h, "198.51.100.9:2"), 999); st != 0 {
		t.Fatalf("slots not released when a flow ends: %#x", st)
	}
}

func TestWindow(t *testing.T) {
	var w window
	for _, tc := range []struct {
		seq uint32
		ok  bool
	}{
		{0, false}, {1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {40, false}, {35, true},
		{19, true}, {18, false}, {36, true}, {300, false},
	} {
		if got := w.accept(tc.seq); got != tc.ok {
			t.Errorf("accept(%d) = %v, want %v", tc.seq, got, tc.ok)
		}
	}
}

func TestLANAndUsers(t *testing.T) {
	svc, h := unitBMC(t, nil)
	c := login(t, newFlow(t, svc, h, "198.51.100.7:40000"), 3, "Administrator", "Password", privAdmin)
	for _, tc := range []struct {
		name       string
		netFn, cmd byte
		data       string
		want       string
	}{
		{"IP address", netFnTransport, 0x02, "01 03 00 00", "11 c0000217"},
		{"mask", netFnTransport, 0x02, "01 06 00 00", "11 ffffff00"},
		{"gateway", netFnTransport, 0x02, "01 0c 00 00", "11 c0000201"},
		{"VLAN", netFnTransport, 0x02, "01 14 00 00", "11 0000"},
		{"cipher suites", netFnTransport, 0x02, "01 17 00 00", "11 00 010203 0f1011"},
		{"revision only", netFnTransport, 0x02, "81 03 00 00", "11"},
		{"user 1 name", netFnApp, 0x46, "01", "41646d696e6973747261746f72000000"},
		{"user 3 access", netFnApp, 0x44, "01 03", "0a 43 05 32"},
		{"user 2 access (inactive)", netFnApp, 0x44, "0e 02", "0a 83 05 03"},
		{"empty slot", netFnApp, 0x44, "01 08", "0a 03 05 0f"},
		{"channel info", netFnApp, 0x42, "0e", "01 04 01 81 f21b00 0000"},
		{"self test", netFnApp, 0x04, "", "55 00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, d, ok := c.cmd(tc.netFn, tc.cmd, unhex(t, tc.data)...)
			if !ok || cc != 0 || !bytes.Equal(d, unhex(t, tc.want)) {
				t.Fatalf("%v cc %#x data %x, want %s", ok, cc, d, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name       string
		netFn, cmd byte
		data       string
		cc         byte
	}{
		{"LAN parameter not supported", netFnTransport, 0x02, "01 c8 00 00", ccParamUnsupported},
		{"LAN on another channel", netFnTransport, 0x02, "02 03 00 00", ccInvalidField},
		{"user id 0", netFnApp, 0x46, "00", ccInvalidField},
		{"user id past the table", netFnApp, 0x46, "0b", ccInvalidField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if cc, _, ok := c.cmd(tc.netFn, tc.cmd, unhex(t, tc.data)...); !ok || cc != tc.cc {
				t.Fatalf("%v cc %#x, want %#x", ok, cc, tc.cc)
			}
		})
	}
}

func TestSDRAndSEL(t *testing.T) {
	svc, h := unitBMC(t, nil)
	c := login(t, newFlow(t, svc, h, "198.51.100.7:40000"), 17, "Administrator", "Password", privAdmin)
	cc, d, _ := c.cmd(netFnStorage, 0x20)
	if cc != 0 || d[0] != sdrVersion {
		t.Fatalf("SDR info %#x %x", cc, d)
	}
	n := int(binary.LittleEndian.Uint16(d[1:]))
	id := uint16(0)
	for i := 0; i < n; i++ {
		cc, rec, _ := c.cmd(netFnStorage, 0x23, 0, 0, byte(id), byte(id>>8), 0, 0xFF)
		if cc != 0 || len(rec) < 2+5 || int(rec[2+4])+5 != len(rec)-2 || rec[2+3] != sdrFullSensor {
			t.Fatalf("SDR %d: %#x %x", id, cc, rec)
		}
		num := rec[2+7]
		if cc, r, _ := c.cmd(netFnSensor, 0x2D, num); cc != 0 || len(r) != 3 || r[2]&0x3F != 0 {
			t.Fatalf("reading of sensor %#x: %#x %x", num, cc, r)
		}
		id = binary.LittleEndian.Uint16(rec)
		if i == n-1 && id != 0xFFFF {
			t.Fatalf("last SDR points to %#x", id)
		}
	}
	if cc, _, _ := c.cmd(netFnStorage, 0x23, 0, 0, 1, 0, 5, 4); cc != ccReservation {
		t.Fatalf("partial read without a reservation: %#x", cc)
	}
	cc, r, _ := c.cmd(netFnStorage, 0x22)
	if cc != 0 || len(r) != 2 {
		t.Fatal("reserve SDR failed")
	}
	if cc, part, _ := c.cmd(netFnStorage, 0x23, r[0], r[1], 1, 0, 5, 4); cc != 0 || len(part) != 6 {
		t.Fatalf("partial read: %#x %x", cc, part)
	}
	cc, info, _ := c.cmd(netFnStorage, 0x40)
	if cc != 0 || binary.LittleEndian.Uint16(info[1:]) == 0 {
		t.Fatalf("SEL info %#x %x", cc, info)
	}
	if cc, e, _ := c.cmd(netFnStorage, 0x43, 0, 0, 0, 0, 0, 0xFF); cc != 0 || len(e) != 18 || e[4] != 0x02 {
		t.Fatalf("first SEL entry %#x %x", cc, e)
	}
	if cc, _, _ := c.cmd(netFnStorage, 0x43, 0, 0, 0xEE, 0, 0, 0xFF); cc != ccNotPresent {
		t.Fatalf("missing SEL entry: %#x", cc)
	}
}

func TestIdentityPerHost(t *testing.T) {
	svc, p := testService(t, nil)
	a := svc.host(protocoltest.Host(p, netip.MustParseAddr("192.0.2.1"), 1))
	a2 := svc.host(protocoltest.Host(p, netip.MustParseAddr("192.0.2.1"), 1))
	b := svc.host(protocoltest.Host(p, netip.MustParseAddr("192.0.2.2"), 2))
	if a.guid != a2.guid || a.mac != a2.mac {
		t.Error("one seed gave two identities")
	}
	if a.guid == b.guid || a.mac == b.mac {
		t.Error("two hosts look cloned")
	}
	if a.mac[0] != 0x0C || a.mac[1] != 0xC4 || a.mac[2] != 0x7A {
		t.Errorf("MAC %x lacks the vendor OUI", a.mac)
	}
}

// TestStateInDatabus: what clients change is written to the host's databus, and a host
// whose databus holds such values (a template's, or restored ones) starts from them.
func TestStateInDatabus(t *testing.T) {
	svc, p := testService(t, nil)
	store := &memStore{kept: map[string][]byte{}}
	h := protocols.NewStoredHost(netip.MustParseAddr("192.0.2.1"), p, 1, time.Now(), 0, store)
	c := login(t, newFlow(t, svc, h, "198.51.100.7:40000"), 3, "Administrator", "Password", privAdmin)
	name := append([]byte{7}, make([]byte, 16)...)
	copy(name[1:], "intruder")
	pw := append([]byte{7, 2}, make([]byte, 16)...)
	copy(pw[2:], "hunter2")
	for _, m := range []struct {
		netFn, cmd byte
		data       []byte
	}{
		{netFnChassis, 0x02, []byte{0}},
		{netFnChassis, 0x08, []byte{5, 0x80, 0x04, 0, 0, 0}},
		{netFnApp, 0x45, name},
		{netFnApp, 0x47, pw},
		{netFnApp, 0x43, []byte{0x91, 7, 4}},
		{netFnStorage, 0x47, []byte{1, 0, 'C', 'L', 'R', 0xAA}},
	} {
		if cc, _, ok := c.cmd(m.netFn, m.cmd, m.data...); !ok || cc != 0 {
			t.Fatalf("netfn %#x cmd %#x: %v %#x", m.netFn, m.cmd, ok, cc)
		}
	}
	if v, _ := h.Databus.Get(keyPowerOn); v != false {
		t.Errorf("%s = %v", keyPowerOn, v)
	}
	if v, _ := h.Databus.GetString(keyBootFlags); v != "8004000000" {
		t.Errorf("%s = %v", keyBootFlags, v)
	}
	// The same host regenerated from a store that kept its writes (eviction, restart).
	h2 := protocols.NewStoredHost(netip.MustParseAddr("192.0.2.1"), p, 1, time.Now(), 0, store)
	c2 := login(t, newFlow(t, svc, h2, "198.51.100.7:40001"), 17, "intruder", "hunter2", privAdmin)
	if cc, d, _ := c2.cmd(netFnChassis, 0x01); cc != 0 || d[0]&1 != 0 {
		t.Errorf("restored power state: %#x %x", cc, d)
	}
	if cc, d, _ := c2.cmd(netFnChassis, 0x09, 5, 0, 0); cc != 0 || !bytes.Equal(d[2:], []byte{0x80, 0x04, 0, 0, 0}) {
		t.Errorf("restored boot flags: %#x %x", cc, d)
	}
	if cc, d, _ := c2.cmd(netFnStorage, 0x40); cc != 0 || binary.LittleEndian.Uint16(d[1:]) != 1 {
		t.Errorf("restored SEL after a clear: %#x %x", cc, d)
	}
	// A template may start a host powered off.
	p3 := testProfile(t, nil)
	h3 := protocoltest.Host(p3, netip.MustParseAddr("192.0.2.3"), 3)
	h3.Databus.Set(keyPowerOn, false)
	c3 := login(t, newFlow(t, svc, h3, "198.51.100.7:40002"), 3, "Administrator", "Password", privUser)
	if cc, d, _ := c3.cmd(netFnChassis, 0x01); cc != 0 || d[0]&1 != 0 {
		t.Errorf("power state from the databus: %#x %x", cc, d)
	}
}

func TestFRUAreas(t *testing.T) {
	svc, h := unitBMC(t, nil)
	fru := svc.host(h).fru
	sum := func(b []byte) (s byte) {
		for _, c := range b {
			s += c
		}
		return s
	}
	if fru[0] != 1 || sum(fru[:8]) != 0 {
		t.Fatalf("common header %x", fru[:8])
	}
	for i, off := range []byte{fru[2], fru[3], fru[4]} {
		a := int(off) * 8
		n := int(fru[a+1]) * 8
		if fru[a] != 1 || a+n > len(fru) || sum(fru[a:a+n]) != 0 {
			t.Errorf("area %d at %d: %x", i, a, fru[a:min(a+n, len(fru))])
		}
	}
	c := login(t, newFlow(t, svc, h, "198.51.100.7:40000"), 3, "Administrator", "Password", privUser)
	if cc, d, _ := c.cmd(netFnStorage, 0x10, 0); cc != 0 || int(binary.LittleEndian.Uint16(d)) != len(fru) {
		t.Fatalf("FRU info %#x %x", cc, d)
	}
	var read []byte
	for off := 0; off < len(fru); off += maxFRURead {
		cc, d, _ := c.cmd(netFnStorage, 0x11, 0, byte(off), byte(off>>8), maxFRURead)
		if cc != 0 || int(d[0]) != len(d)-1 {
			t.Fatalf("read at %d: %#x %x", off, cc, d)
		}
		read = append(read, d[1:]...)
	}
	if !bytes.Equal(read, fru) {
		t.Error("FRU read back differs")
	}
	if cc, _, _ := c.cmd(netFnStorage, 0x11, 0, 0, 0, maxFRURead+1); cc != ccCannotReturn {
		t.Errorf("oversized read: %#x", cc)
	}
	if cc, _, _ := c.cmd(netFnStorage, 0x10, 1); cc != ccNotPresent {
		t.Errorf("FRU device 1: %#x", cc)
	}
}

// TestConcurrentFlows runs sessions on many flows of one host at once, and datagrams of
// one flow from several goroutines, for the race detector.
func TestConcurrentFlows(t *testing.T) {
	svc, h := unitBMC(t, withV15)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := newFlow(t, svc, h, fmt.Sprintf("198.51.100.%d:4000", i+1))
			su := []int{3, 17}[i%2]
			c := &console{f: f, su: standardSuite(su), user: []byte("Administrator"), pass: []byte("Password")}
			if !c.handshake() {
				errs <- fmt.Errorf("flow %d: handshake", i)
				return
			}
			if cc, _, ok := c.cmd(netFnApp, 0x3B, privAdmin); !ok || cc != 0 {
				errs <- fmt.Errorf("flow %d: set privilege %v %#x", i, ok, cc)
				return
			}
			for j := range 20 {
				op := byte(j % 2)
				if cc, _, ok := c.cmd(netFnChassis, 0x02, op); !ok || cc != 0 {
					errs <- fmt.Errorf("flow %d: chassis control %v %#x", i, ok, cc)
					return
				}
				c.cmd(netFnApp, 0x44, 1, byte(1+j%10))
				c.cmd(netFnStorage, 0x23, 0, 0, 0, 0, 0, 0xFF)
			}
		}()
	}
	// One flow, hammered from several goroutines with pings and pre-session requests.
	f := newFlow(t, svc, h, "198.51.100.99:4000")
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				f.send(unhex(t, "0600ff06 000011be 802a0000"))
				f.send(appendV15NoAuth(nil, lanMsg(netFnApp, 0x38, 0, 0x8e, 0x04)))
				f.send(v2Packet(payloadOpenReq, 0, 0, unhex(t, "01000000 04030201 00000008 01000000 01000008 01000000 02000008 01000000")))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func standardSuite(id int) suite {
	s, _ := lookupSuite(id)
	return s
}

// TestSessionTimeouts ages sessions by hand (no clock in the test): a half-open handshake
// ends after handshakeTimeout, an idle session after the profile's session timeout.
func TestSessionTimeouts(t *testing.T) {
	svc, h := unitBMC(t, nil)
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	c := login(t, f, 3, "Administrator", "Password", privAdmin)
	req := unhex(t, "01000000 04030201 00000008 01000000 01000008 01000000 02000008 01000000")
	_, _, p := v2Payload(t, f.one(v2Packet(payloadOpenReq, 0, 0, req)), 0)
	halfOpen := le32(p[8:])
	fl := f.sess.State(flowStateKey, nil).(*flow)
	age := func(id uint32, d time.Duration) {
		fl.mu.Lock()
		fl.sessions[id].last = time.Now().Add(-d)
		fl.mu.Unlock()
	}
	age(halfOpen, handshakeTimeout+time.Second)
	age(c.bmcID, handshakeTimeout+time.Second)
	if cc, _, ok := c.cmd(netFnChassis, 0x01); !ok || cc != 0 {
		t.Fatal("an active session ended after the handshake timeout")
	}
	fl.mu.Lock()
	_, alive := fl.sessions[halfOpen]
	fl.mu.Unlock()
	if alive {
		t.Error("a half-open handshake outlived the handshake timeout")
	}
	age(c.bmcID, svc.cfg.timeout+time.Second)
	if _, _, ok := c.cmd(netFnChassis, 0x01); ok {
		t.Error("an idle session outlived the session timeout")
	}
	var reasons []any
	for _, e := range f.events.OfType("ipmi.session_close") {
		reasons = append(reasons, fieldOf(e, "reason"))
	}
	if len(reasons) != 1 || reasons[0] != "timeout" {
		t.Errorf("close reasons %v", reasons)
	}
	if n := svc.host(h).sessions; n != 0 {
		t.Errorf("%d sessions left", n)
	}
}

// memStore is a protocols.HostStore in memory: what the sensor's state directory does for
// one host, without the disk.
type memStore struct {
	mu   sync.Mutex
	kept map[string][]byte
}

func (m *memStore) Save(key string, value []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kept[key] = append([]byte(nil), value...)
	return true
}

func (m *memStore) Saved(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.kept[key]
	return v, ok
}

func (m *memStore) SavedKeys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.kept {
		out = append(out, k)
	}
	return out
}
