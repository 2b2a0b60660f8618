package ipmi

import (
	"encoding/binary"
	"strings"
	"testing"
)

// maxReply bounds any answer: no request may buy a large datagram towards a spoofed source.
const maxReply = 200

func checkReplies(t *testing.T, req []byte, out [][]byte) {
	t.Helper()
	if len(out) > 2 {
		t.Fatalf("%d replies to %x", len(out), req)
	}
	for _, r := range out {
		if len(r) > maxReply {
			t.Fatalf("%d-byte reply to %x", len(r), req)
		}
	}
}

// FuzzPacket feeds arbitrary datagrams to a flow that holds an RMCP+ session without
// integrity (suite 1) and an IPMI v1.5 session without authentication, so random bytes
// reach every layer: RMCP, ASF, IPMI v1.5, RMCP+ framing, the handshakes and the command
// handlers.
func FuzzPacket(f *testing.F) {
	svc, h := unitBMC(f, func(s string) string {
		return withSuites("0,1,2,3,15,16,17")(strings.Replace(s, "<user_list>", "<auth_types>none,md5</auth_types><user_list>", 1))
	})
	fl := newFlow(f, svc, h, "198.51.100.7:40000")
	c := login(f, fl, 1, "Administrator", "Password", privAdmin)
	v15, _ := v15Login(f, fl, authNone, "Administrator", "Password", privAdmin)
	if v15 == nil || v15.seq == 0 {
		f.Fatal("v1.5 login failed")
	}
	seeds := [][]byte{
		unhex(f, "0600ff06 000011be 802a0000"),
		unhex(f, "06000506 000011be 80070000"),
		unhex(f, "0600ff07 00 00000000 00000000 09 2018c8 81 00 38 8e04 b5"),
		unhex(f, "0600ff07 02 01000000 02000000 00112233445566778899aabbccddeeff 09 2018c8 81 00 38 8e04 b5"),
		appendV15NoAuth(nil, lanMsg(netFnApp, 0x39, 1, append([]byte{authMD5}, "Administrator\x00\x00\x00"...)...)),
		v2Packet(payloadIPMI, 0, 0, lanMsg(netFnApp, 0x54, 0, 0x0e, 0x00, 0x80)),
		v2Packet(payloadOpenReq, 0, 0, unhex(f, "01000000 04030201 00000008 01000000 01000008 01000000 02000008 01000000")),
		v2Packet(payloadRAKP1, 0, 0, append(unhex(f, "02000000 04030201 00112233445566778899aabbccddeeff 14 0000 0d"), "Administrator"...)),
		v2Packet(payloadRAKP3, 0, 0, unhex(f, "03000000 04030201 00112233445566778899aabbccddeeff00112233")),
	}
	for _, m := range []struct {
		netFn, cmd byte
		data       []byte
	}{
		{netFnApp, 0x01, nil}, {netFnChassis, 0x02, []byte{1}}, {netFnStorage, 0x23, []byte{0, 0, 0, 0, 0, 0xff}},
		{netFnStorage, 0x43, []byte{0, 0, 0xff, 0xff, 0, 0xff}}, {netFnTransport, 0x02, []byte{1, 3, 0, 0}},
		{netFnApp, 0x44, []byte{1, 1}}, {netFnApp, 0x3B, []byte{4}}, {netFnSensor, 0x2D, []byte{1}},
	} {
		seeds = append(seeds, c.packet(m.netFn, m.cmd, m.data...), v15.packet(m.netFn, m.cmd, m.data...))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out := fl.send(pkt)
		checkReplies(t, pkt, out)
	})
}

// FuzzRAKP runs Open Session and then arbitrary RAKP 1 and RAKP 3 messages; with patch set
// the messages carry the real session id, so the checks past the id are reached.
func FuzzRAKP(f *testing.F) {
	svc, h := unitBMC(f, withSuites("0,3,17"))
	f.Add(append(unhex(f, "02000000 00000000 00112233445566778899aabbccddeeff 14 0000 0d"), "Administrator"...),
		unhex(f, "03000000 00000000 00112233445566778899aabbccddeeff00112233"), true, byte(3))
	f.Add(append(unhex(f, "02000000 00000000 00112233445566778899aabbccddeeff 04 0000 04"), "root"...),
		unhex(f, "03000000 00000000"), true, byte(17))
	f.Add(append(unhex(f, "02000000 00000000 00112233445566778899aabbccddeeff 14 0000 05"), "User1"...),
		unhex(f, "03000000 00000000"), true, byte(0))
	f.Add([]byte{2}, []byte{3, 1}, false, byte(3))
	f.Fuzz(func(t *testing.T, r1, r3 []byte, patch bool, suiteID byte) {
		fl := newFlow(t, svc, h, "198.51.100.7:40000")
		su := svc.cfg.suites[int(suiteID)%len(svc.cfg.suites)]
		req := []byte{1, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 8, su.auth, 0, 0, 0, 1, 0, 0, 8, su.integ, 0, 0, 0, 2, 0, 0, 8, su.conf, 0, 0, 0}
		resp := fl.one(v2Packet(payloadOpenReq, 0, 0, req))
		_, _, p := v2Payload(t, resp, 0)
		if p[1] != 0 {
			t.Fatalf("Open Session refused: %x", p)
		}
		id := le32(p[8:])
		for _, m := range []struct {
			pt byte
			b  []byte
		}{{payloadRAKP1, r1}, {payloadRAKP3, r3}} {
			b := append([]byte(nil), m.b...)
			if patch && len(b) >= 8 {
				binary.LittleEndian.PutUint32(b[4:], id)
			}
			pkt := v2Packet(m.pt, 0, 0, b)
			checkReplies(t, pkt, fl.send(pkt))
		}
		// Whatever happened, the session is usable or gone, never half-made: a command to
		// it is answered only when the handshake completed.
		fl.send(v2Packet(payloadIPMI, id, 1, lanMsg(netFnApp, 0x01, 1)))
	})
}
