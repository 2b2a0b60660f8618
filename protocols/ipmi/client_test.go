package ipmi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// flowT drives the service directly, one UDP flow, no socket: what a test sends and what
// comes back.
type flowT struct {
	t      testing.TB
	svc    *service
	sess   *protocols.Session
	events *protocoltest.Recorder
	via    func([]byte) []byte // when set, datagrams go through a socket instead
}

func newFlow(t testing.TB, svc *service, h *protocols.Host, src string) *flowT {
	rec := &protocoltest.Recorder{}
	sess := &protocols.Session{ID: "unit", Protocol: Name, Transport: protocols.UDP,
		Local: netip.AddrPortFrom(h.Addr, Port), Remote: netip.MustParseAddrPort(src), Host: h, Sensor: "test",
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Events: rec, MaxPayload: 4096}
	sess.Open(context.Background(), func([]byte) error { return nil })
	t.Cleanup(sess.Close)
	return &flowT{t: t, svc: svc, sess: sess, events: rec}
}

// send serves one datagram and returns the replies.
func (f *flowT) send(pkt []byte) [][]byte {
	if f.via != nil {
		return [][]byte{f.via(pkt)}
	}
	var out [][]byte
	f.svc.ServePacket(context.Background(), f.sess, pkt, func(b []byte) { out = append(out, append([]byte(nil), b...)) })
	return out
}

// one serves one datagram and returns its only reply, or nil.
func (f *flowT) one(pkt []byte) []byte {
	f.t.Helper()
	out := f.send(pkt)
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	f.t.Fatalf("%d replies, want one", len(out))
	return nil
}

// lanMsg builds an IPMI request message to the BMC.
func lanMsg(netFn, cmd, seq byte, data ...byte) []byte {
	b := []byte{bmcSlaveAddr, netFn << 2}
	b = append(b, checksum(b))
	b = append(b, remoteSWID, seq<<2, cmd)
	b = append(b, data...)
	return append(b, checksum(b[3:]))
}

// v2Packet builds an unauthenticated RMCP+ packet.
func v2Packet(pt byte, id, seq uint32, payload []byte) []byte {
	return appendV2(nil, pt, id, seq, payload, nil)
}

// v2Payload checks an RMCP+ reply's framing and returns its payload type and payload.
func v2Payload(t testing.TB, b []byte, authLen int) (byte, uint32, []byte) {
	t.Helper()
	h, rest, err := parseRMCP(b)
	if err != nil || h.class != rmcpClassIPMI {
		t.Fatalf("reply %x: not RMCP/IPMI: %v", b, err)
	}
	v, err := parseV2(rest, func(uint32) (int, bool) { return authLen, true })
	if err != nil {
		t.Fatalf("reply %x: %v", b, err)
	}
	return v.payloadType, v.id, v.payload
}

// console is the remote console side of an RMCP+ session, written from the specification
// for the tests (ipmitool is the independent check).
type console struct {
	f              *flowT
	su             suite
	user, pass     []byte
	role           byte
	consoleID      uint32
	bmcID          uint32
	rc, rm         [16]byte
	guid           [16]byte
	k              *keys
	seq            uint32
	rqSeq          byte
	openStatus     byte
	rakp2Status    byte
	rakp4Status    byte
	rakp2HMACValid bool
}

// handshake runs Open Session and RAKP 1–4; it stops at the first non-zero status.
func (c *console) handshake() bool {
	t := c.f.t
	t.Helper()
	if c.consoleID == 0 {
		c.consoleID = 0xA0A1A2A3
	}
	if c.role == 0 {
		c.role = roleNameOnly | privAdmin
	}
	req := []byte{0x01, 0, 0, 0}
	req = binary.LittleEndian.AppendUint32(req, c.consoleID)
	req = append(req, 0, 0, 0, 8, c.su.auth, 0, 0, 0, 1, 0, 0, 8, c.su.integ, 0, 0, 0, 2, 0, 0, 8, c.su.conf, 0, 0, 0)
	resp := c.f.one(v2Packet(payloadOpenReq, 0, 0, req))
	if resp == nil {
		t.Fatal("no Open Session Response")
	}
	pt, _, p := v2Payload(t, resp, 0)
	if pt != payloadOpenResp || len(p) < 12 || p[0] != 0x01 || le32(p[4:]) != c.consoleID {
		t.Fatalf("Open Session Response %x", p)
	}
	if c.openStatus = p[1]; c.openStatus != 0 {
		return false
	}
	if len(p) != 36 {
		t.Fatalf("Open Session Response %x: want 36 bytes", p)
	}
	c.bmcID = le32(p[8:])
	if p[16] != c.su.auth || p[24] != c.su.integ || p[32] != c.su.conf {
		t.Fatalf("Open Session Response %x: other algorithms than proposed", p)
	}
	copy(c.rc[:], "console-random-1")
	r1 := []byte{0x02, 0, 0, 0}
	r1 = binary.LittleEndian.AppendUint32(r1, c.bmcID)
	r1 = append(r1, c.rc[:]...)
	r1 = append(r1, c.role, 0, 0, byte(len(c.user)))
	r1 = append(r1, c.user...)
	resp = c.f.one(v2Packet(payloadRAKP1, 0, 0, r1))
	if resp == nil {
		t.Fatal("no RAKP 2")
	}
	pt, _, p = v2Payload(t, resp, 0)
	if pt != payloadRAKP2 || len(p) < 8 || p[0] != 0x02 || le32(p[4:]) != c.consoleID {
		t.Fatalf("RAKP 2 %x", p)
	}
	if c.rakp2Status = p[1]; c.rakp2Status != 0 {
		if len(p) != 8 {
			t.Fatalf("RAKP 2 with status %#x: %d bytes, want 8", p[1], len(p))
		}
		return false
	}
	h := authHash(c.su.auth)
	hlen := 0
	if h != nil {
		hlen = h().Size()
	}
	if len(p) != 40+hlen {
		t.Fatalf("RAKP 2 %x: %d bytes, want %d", p, len(p), 40+hlen)
	}
	copy(c.rm[:], p[8:24])
	copy(c.guid[:], p[24:40])
	ids := binary.LittleEndian.AppendUint32(nil, c.consoleID)
	ids = binary.LittleEndian.AppendUint32(ids, c.bmcID)
	c.rakp2HMACValid = h == nil || hmac.Equal(p[40:], hmacSum(h, c.pass, ids, c.rc[:], c.rm[:], c.guid[:], []byte{c.role, byte(len(c.user))}, c.user))
	r3 := []byte{0x03, 0, 0, 0}
	r3 = binary.LittleEndian.AppendUint32(r3, c.bmcID)
	if h != nil {
		r3 = append(r3, hmacSum(h, c.pass, c.rm[:], ids[:4], []byte{c.role, byte(len(c.user))}, c.user)...)
	}
	resp = c.f.one(v2Packet(payloadRAKP3, 0, 0, r3))
	if resp == nil {
		t.Fatal("no RAKP 4")
	}
	pt, _, p = v2Payload(t, resp, 0)
	if pt != payloadRAKP4 || len(p) < 8 || p[0] != 0x03 || le32(p[4:]) != c.consoleID {
		t.Fatalf("RAKP 4 %x", p)
	}
	if c.rakp4Status = p[1]; c.rakp4Status != 0 {
		return false
	}
	k, err := deriveKeys(c.su, c.pass, c.rc[:], c.rm[:], c.role, c.user)
	if err != nil {
		t.Fatal(err)
	}
	c.k = k
	if h != nil {
		icv := hmacSum(h, k.sik, c.rc[:], ids[4:], c.guid[:])[:rakp4Len(c.su.auth)]
		if !bytes.Equal(p[8:], icv) {
			t.Fatalf("RAKP 4 integrity check value %x, want %x", p[8:], icv)
		}
	}
	return true
}

// packet builds an in-session request packet with the next sequence number.
func (c *console) packet(netFn, cmd byte, data ...byte) []byte {
	c.seq++
	c.rqSeq = (c.rqSeq + 1) & 0x3F
	return c.packetSeq(c.seq, netFn, cmd, data...)
}

func (c *console) packetSeq(seq uint32, netFn, cmd byte, data ...byte) []byte {
	payload := lanMsg(netFn, cmd, c.rqSeq, data...)
	pt := byte(payloadIPMI)
	if c.k.block != nil {
		payload = c.k.encrypt(payload, randRead)
		pt |= payloadEncrypted
	}
	var sign func(dst, signed []byte) []byte
	if c.k.integ != nil {
		pt |= payloadAuthentic
		sign = c.k.sign
	}
	return appendV2(nil, pt, c.bmcID, seq, payload, sign)
}

// cmd sends a command in the session and returns the completion code and data; ok is
// false when no reply came.
func (c *console) cmd(netFn, cmd byte, data ...byte) (byte, []byte, bool) {
	return c.open(c.f.one(c.packet(netFn, cmd, data...)), netFn, cmd)
}

func (c *console) open(resp []byte, netFn, cmd byte) (byte, []byte, bool) {
	t := c.f.t
	t.Helper()
	if resp == nil {
		return 0, nil, false
	}
	_, rest, _ := parseRMCP(resp)
	v, err := parseV2(rest, func(uint32) (int, bool) { return c.k.integLen, true })
	if err != nil {
		t.Fatalf("reply %x: %v", resp, err)
	}
	if v.id != c.consoleID {
		t.Fatalf("reply to session %#x, want %#x", v.id, c.consoleID)
	}
	if v.authentic() != (c.k.integ != nil) || v.encrypted() != (c.k.block != nil) {
		t.Fatalf("reply payload type %#x for suite %d", v.payloadType, c.su.id)
	}
	if v.authentic() && !c.k.verify(v.signed, v.authCode) {
		t.Fatalf("reply integrity code does not verify")
	}
	p := v.payload
	if v.encrypted() {
		if p = c.k.decrypt(p); p == nil {
			t.Fatalf("reply does not decrypt")
		}
	}
	if len(p) < 8 || checksum(p[:2]) != p[2] || checksum(p[3:len(p)-1]) != p[len(p)-1] {
		t.Fatalf("response message %x: bad framing or checksums", p)
	}
	if p[1]>>2 != netFn|1 || p[5] != cmd || p[4]>>2 != c.rqSeq {
		t.Fatalf("response message %x: netfn/cmd/seq do not match the request", p)
	}
	return p[6], p[7 : len(p)-1], true
}

// login opens a session with the given suite, user and password, failing the test when
// the handshake fails, and raises the privilege to priv.
func login(t testing.TB, f *flowT, suiteID int, user, pass string, priv byte) *console {
	t.Helper()
	su, _ := lookupSuite(suiteID)
	c := &console{f: f, su: su, user: []byte(user), pass: []byte(pass)}
	if !c.handshake() {
		t.Fatalf("handshake suite %d as %s: open %#x rakp2 %#x rakp4 %#x", suiteID, user, c.openStatus, c.rakp2Status, c.rakp4Status)
	}
	if priv > privUser {
		if cc, d, ok := c.cmd(netFnApp, 0x3B, priv); !ok || cc != 0 || !bytes.Equal(d, []byte{priv}) {
			t.Fatalf("Set Session Privilege %d: %v %#x %x", priv, ok, cc, d)
		}
	}
	return c
}

func (c *console) String() string { return fmt.Sprintf("session %#x suite %d", c.bmcID, c.su.id) }
