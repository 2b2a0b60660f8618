package enip

import (
	"bytes"
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// identityItem is a decoded ListIdentity item.
type identityItem struct {
	addr                     netip.AddrPort
	vendor, devType, product uint16
	major, minor             byte
	status                   uint16
	serial                   uint32
	name                     string
	state                    byte
}

func parseIdentityItem(t *testing.T, d []byte) identityItem {
	t.Helper()
	items, err := parseCPF(d, nil)
	if err != nil || len(items) != 1 || items[0].Type != itemIdentity {
		t.Fatalf("ListIdentity CPF %v %+v", err, items)
	}
	b := items[0].Data
	if len(b) < 34 || binary.LittleEndian.Uint16(b) != 1 || binary.BigEndian.Uint16(b[2:]) != 2 {
		t.Fatalf("identity item % x", b)
	}
	var ip [4]byte
	copy(ip[:], b[6:10])
	id := identityItem{addr: netip.AddrPortFrom(netip.AddrFrom4(ip), binary.BigEndian.Uint16(b[4:])),
		vendor: binary.LittleEndian.Uint16(b[18:]), devType: binary.LittleEndian.Uint16(b[20:]),
		product: binary.LittleEndian.Uint16(b[22:]), major: b[24], minor: b[25],
		status: binary.LittleEndian.Uint16(b[26:]), serial: binary.LittleEndian.Uint32(b[28:])}
	l := int(b[32])
	if len(b) != 33+l+1 {
		t.Fatalf("identity item of %d bytes for a %d-byte name", len(b), l)
	}
	id.name, id.state = string(b[33:33+l]), b[33+l]
	return id
}

// TestListIdentity: the profile's identity with the host's own serial and address, over
// TCP and UDP, with the sender context echoed.
func TestListIdentity(t *testing.T) {
	svc, h, tcp, udp := serve(t, "default", 1)
	dev := svc.hostDevice(h)
	want := identityItem{addr: netip.AddrPortFrom(h.Addr, Port), vendor: 1, devType: 14, product: 90, major: 2,
		minor: 10, status: 0x3060, serial: dev.serial, name: "1756-L61/B LOGIX5561", state: 3}
	if dev.serial == cpppoSerial || dev.serial == 0 {
		t.Fatalf("serial 0x%08x", dev.serial)
	}
	c := dial(t, tcp.Addr)
	_, d := c.call(cmdListIdentity, nil)
	if got := parseIdentityItem(t, d); got != want {
		t.Fatalf("ListIdentity over TCP:\n got %+v\nwant %+v", got, want)
	}
	u, err := net.Dial("udp", udp.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(5 * time.Second))
	u.Write(frame(cmdListIdentity, 0, "udpctx01", nil))
	buf := make([]byte, 1500)
	n, err := u.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	uh, _ := parseHeader(buf[:n])
	if string(uh.Context[:]) != "udpctx01" || int(uh.Length) != n-headerLen {
		t.Fatalf("UDP reply header %+v", uh)
	}
	if got := parseIdentityItem(t, buf[headerLen:n]); got != want {
		t.Fatalf("ListIdentity over UDP:\n got %+v\nwant %+v", got, want)
	}

	// another host of the same profile is another unit
	_, p := configure(t, "default")
	h2 := protocoltest.Host(p, netip.MustParseAddr("192.0.2.2"), 2)
	d2 := svc.hostDevice(h2)
	if d2.serial == dev.serial || d2.mac == dev.mac {
		t.Fatalf("two hosts share serial 0x%08x or MAC %s", d2.serial, macString(d2.mac))
	}
	if dev.mac[0] != 0x00 || dev.mac[1] != 0x00 || dev.mac[2] != 0xBC {
		t.Fatalf("MAC %s lacks Rockwell's OUI", macString(dev.mac))
	}
}

// TestConpotExchanges replays Conpot's test_enip_server.py against its default template.
func TestConpotExchanges(t *testing.T) {
	_, _, tcp, udp := serve(t, "default", 3)
	c := dial(t, tcp.Addr)
	// list_services: one "Communications" item
	_, d := c.call(cmdListServices, nil)
	items, err := parseCPF(d, nil)
	if err != nil || len(items) != 1 || items[0].Type != itemServices || !bytes.HasPrefix(items[0].Data[4:], []byte("Communications\x00")) {
		t.Fatalf("ListServices % x", d)
	}
	// list_interfaces: count 0
	if _, d := c.call(cmdListInterfaces, nil); !bytes.Equal(d, []byte{0, 0}) {
		t.Fatalf("ListInterfaces % x", d)
	}
	// read_tags / write_tags: Get/Set Attribute Single @22/1/1
	c.register()
	if r := c.rr(cipReq(svcGetAttributeSingle, logical(22, 1, 1), nil)); r.Status != 0 || !bytes.Equal(r.Data, []byte{100}) {
		t.Fatalf("@22/1/1 read %+v", r)
	}
	if r := c.rr(cipReq(svcSetAttributeSingle, logical(22, 1, 1), []byte{50})); r.Status != 0 {
		t.Fatalf("@22/1/1 write %+v", r)
	}
	if r := c.rr(cipReq(svcGetAttributeSingle, logical(22, 1, 1), nil)); r.Status != 0 || !bytes.Equal(r.Data, []byte{50}) {
		t.Fatalf("@22/1/1 read after write %+v", r)
	}
	// the same tag by name
	if r := c.rr(cipReq(svcReadTag, symbolic("scada"), []byte{1, 0})); r.Status != 0 || !bytes.Equal(r.Data, []byte{0xC2, 0, 50}) {
		t.Fatalf("Read Tag SCADA %+v", r)
	}
	// FLOAT: REAL[4] of 0.1; TEXT: SSTRING[32] of "A"
	r := c.rr(cipReq(svcGetAttributeSingle, logical(22, 1, 3), nil))
	if r.Status != 0 || len(r.Data) != 16 || math.Float32frombits(binary.LittleEndian.Uint32(r.Data[12:])) != float32(0.1) {
		t.Fatalf("@22/1/3 %+v", r)
	}
	if r := c.rr(cipReq(svcGetAttributeSingle, logical(22, 1, 2), nil)); r.Status != 0 || len(r.Data) != 64 || string(r.Data[:2]) != "\x01A" {
		t.Fatalf("@22/1/2 %+v", r)
	}
	// malformend_request_tcp: garbage after a valid-looking header must not kill the server
	m := dial(t, tcp.Addr)
	m.send(unhex(t, "650004000001000000000000000000000000000000000000 0100 0000 deadbeef deadbeef"))
	m.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	m.c.Read(buf)
	// udp list services
	u, _ := net.Dial("udp", udp.Addr.String())
	defer u.Close()
	u.SetDeadline(time.Now().Add(5 * time.Second))
	u.Write(frame(cmdListServices, 0, "", nil))
	n, err := u.Read(buf)
	if err != nil || n < headerLen+6 || binary.LittleEndian.Uint16(buf) != cmdListServices {
		t.Fatalf("UDP ListServices: %v % x", err, buf[:n])
	}
	if _, d := c.call(cmdListIdentity, nil); parseIdentityItem(t, d).name != "1756-L61/B LOGIX5561" {
		t.Fatal("product name")
	}
}

// TestEncapsulationStatus: the status codes the specification lists for bad requests.
func TestEncapsulationStatus(t *testing.T) {
	_, _, tcp, _ := serve(t, "default", 4)
	c := dial(t, tcp.Addr)
	if h, _ := c.call(cmdSendRRData, rrData(cipReq(1, logical(1, 1), nil))); h.Status != statusInvalidSession {
		t.Fatalf("SendRRData without session: status 0x%x", h.Status)
	}
	if h, d := c.call(cmdRegisterSession, []byte{2, 0, 0, 0}); h.Status != statusUnsupportedProtocol || !bytes.Equal(d, []byte{1, 0, 0, 0}) {
		t.Fatalf("RegisterSession version 2: %+v % x", h, d)
	}
	if h, _ := c.call(cmdRegisterSession, []byte{1, 0}); h.Status != statusInvalidLength {
		t.Fatalf("short RegisterSession: status 0x%x", h.Status)
	}
	c.register()
	if h, _ := c.call(cmdRegisterSession, []byte{1, 0, 0, 0}); h.Status != statusInvalidCommand {
		t.Fatalf("second RegisterSession: status 0x%x", h.Status)
	}
	if h, _ := c.call(0x00FF, nil); h.Status != statusInvalidCommand {
		t.Fatalf("unknown command: status 0x%x", h.Status)
	}
	s := c.session
	c.session++
	if h, _ := c.call(cmdSendRRData, rrData(cipReq(1, logical(1, 1), nil))); h.Status != statusInvalidSession {
		t.Fatalf("wrong session: status 0x%x", h.Status)
	}
	c.session = s
	// a CPF whose count lies
	bad := rrData(cipReq(1, logical(1, 1), nil))
	bad[6] = 3
	if h, _ := c.call(cmdSendRRData, bad); h.Status != statusIncorrectData {
		t.Fatalf("lying CPF count: status 0x%x", h.Status)
	}
	// NOP gets no reply; the connection goes on
	c.send(frame(cmdNOP, 0, "", []byte{1, 2, 3}))
	if r := c.rr(cipReq(svcGetAttributeSingle, logical(1, 1, 1), nil)); r.Status != 0 || !bytes.Equal(r.Data, []byte{1, 0}) {
		t.Fatalf("vendor id %+v", r)
	}
	// a frame longer than the server takes: invalid length, then close
	c.send(unhex(t, "6f00ffff000000000000000000000000000000000000000000"))
	if h, _ := c.recv(); h.Status != statusInvalidLength {
		t.Fatalf("long frame: status 0x%x", h.Status)
	}
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("connection still open, read %d bytes", n)
	}
	// UnRegisterSession closes the connection without reply
	c2 := dial(t, tcp.Addr)
	c2.register()
	c2.send(frame(cmdUnRegisterSession, c2.session, "", nil))
	c2.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c2.c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("connection open after UnRegisterSession, read %d bytes", n)
	}
	if n := len(tcp.Events.OfType(evBadFrame)); n != 1 {
		t.Fatalf("%d bad_frame events", n)
	}
}

// TestObjects: Identity, Message Router, TCP/IP Interface and Ethernet Link attributes.
func TestObjects(t *testing.T) {
	svc, h, tcp, _ := serve(t, "default", 5)
	dev := svc.hostDevice(h)
	c := dial(t, tcp.Addr)
	c.register()
	r := c.rr(cipReq(svcGetAttributesAll, logical(1, 1), nil))
	want := unhex(t, "0100 0e00 5a00 020a 6030")
	want = binary.LittleEndian.AppendUint32(want, dev.serial)
	want = append(append(want, 20), "1756-L61/B LOGIX5561"...)
	if r.Status != 0 || !bytes.Equal(r.Data, want) {
		t.Fatalf("Identity GAA\n got % x\nwant % x", r.Data, want)
	}
	ip := h.Addr.As4()
	r = c.rr(cipReq(svcGetAttributeSingle, logical(0xF5, 1, 5), nil))
	if r.Status != 0 || len(r.Data) != 22 || !bytes.Equal(r.Data[:4], []byte{ip[3], ip[2], ip[1], ip[0]}) {
		t.Fatalf("TCP/IP interface configuration %+v", r)
	}
	r = c.rr(cipReq(svcGetAttributeSingle, logical(0xF6, 1, 3), nil))
	if r.Status != 0 || !bytes.Equal(r.Data, dev.mac[:]) {
		t.Fatalf("MAC %+v", r)
	}
	r = c.rr(cipReq(svcGetAttributeList, logical(1, 1), unhex(t, "0300 0100 0700 6300")))
	if r.Status != gsAttributeListError || !bytes.Equal(r.Data[:6], unhex(t, "0300 0100 0000")) ||
		!bytes.Equal(r.Data[len(r.Data)-4:], unhex(t, "6300 1400")) {
		t.Fatalf("Get Attribute List %+v", r)
	}
	for _, tc := range []struct {
		req    []byte
		status byte
	}{
		{cipReq(svcGetAttributeSingle, logical(1, 2, 1), nil), gsObjectDoesNotExist},
		{cipReq(svcGetAttributeSingle, logical(1, 1, 99), nil), gsAttributeUnsupported},
		{cipReq(svcGetAttributeSingle, logical(0x99, 1, 1), nil), gsPathDestUnknown},
		{cipReq(svcSetAttributeSingle, logical(1, 1, 7), []byte{1, 'x'}), gsAttributeNotSettable},
		{cipReq(0x33, logical(1, 1), nil), gsServiceNotSupported},
		{cipReq(svcGetAttributeSingle, []byte{0x55, 0x01}, nil), gsPathSegmentError},
		{[]byte{svcGetAttributeSingle, 9, 0x20}, gsPathSizeInvalid},
	} {
		if r := c.rr(tc.req); r.Status != tc.status {
			t.Errorf("% x: status 0x%02x, want 0x%02x", tc.req, r.Status, tc.status)
		}
	}
	r = c.rr(cipReq(svcGetAttributeSingle, logical(2, 1, 1), nil))
	if r.Status != 0 || binary.LittleEndian.Uint16(r.Data) != uint16(len(objectList)) {
		t.Fatalf("Message Router object list %+v", r)
	}
}

// TestTags: Logix Read/Write Tag and their fragmented forms over every tag type.
func TestTags(t *testing.T) {
	_, h, tcp, _ := serve(t, "logix", 6)
	c := dial(t, tcp.Addr)
	c.register()
	read := func(name string, count uint16, idx ...uint32) cipReply {
		return c.rr(cipReq(svcReadTag, symbolic(name, idx...), binary.LittleEndian.AppendUint16(nil, count)))
	}
	for _, tc := range []struct {
		name string
		want string
	}{
		{"Pump_Run", "c100 01"},
		{"Speed", "c300 aa05"},
		{"Level", "ca00 00006040"},
		{"Mode", "c200 02"},
	} {
		if r := read(tc.name, 1); r.Status != 0 || !bytes.Equal(r.Data, unhex(t, tc.want)) {
			t.Errorf("read %s: %+v", tc.name, r)
		}
	}
	r := read("Station", 1)
	if r.Status != 0 || len(r.Data) != 4+4+82 || !bytes.Equal(r.Data[:8], unhex(t, "a002ce0f 0e000000")) || string(r.Data[8:22]) != "Lift station 4" {
		t.Fatalf("read Station %+v", r)
	}
	// writes
	w := func(name string, typ []byte, count uint16, data []byte, idx ...uint32) cipReply {
		d := append(append([]byte(nil), typ...), byte(count), byte(count>>8))
		return c.rr(cipReq(svcWriteTag, symbolic(name, idx...), append(d, data...)))
	}
	if r := w("Speed", []byte{0xC3, 0}, 1, []byte{0x10, 0x27}); r.Status != 0 {
		t.Fatalf("write Speed %+v", r)
	}
	if r := read("Speed", 1); !bytes.Equal(r.Data, unhex(t, "c300 1027")) {
		t.Fatalf("Speed after write %+v", r)
	}
	st := append(unhex(t, "05000000"), append([]byte("Owned"), make([]byte, 77)...)...)
	if r := w("Station", unhex(t, "a002ce0f"), 1, st); r.Status != 0 {
		t.Fatalf("write Station %+v", r)
	}
	if r := read("Station", 1); string(r.Data[8:13]) != "Owned" || r.Data[4] != 5 {
		t.Fatalf("Station after write %+v", r)
	}
	if v, _ := h.Databus.Get("enip.tag.Station"); v.([]any)[0] != "Owned" {
		t.Fatalf("databus holds %v", v)
	}
	// errors
	if r := w("Speed", []byte{0xC4, 0}, 1, []byte{1, 0, 0, 0}); r.Status != gsGeneralError || len(r.Ext) != 1 || r.Ext[0] != extTypeMismatch {
		t.Errorf("type mismatch %+v", r)
	}
	if r := w("Speed", []byte{0xC3, 0}, 1, []byte{1}); r.Status != gsNotEnoughData {
		t.Errorf("short write %+v", r)
	}
	if r := read("Nope", 1); r.Status != gsPathSegmentError {
		t.Errorf("unknown tag %+v", r)
	}
	if r := read("Counts", 2, 299); r.Status != gsGeneralError || r.Ext[0] != extBeyondEnd {
		t.Errorf("read beyond end %+v", r)
	}
	if r := read("Counts", 1, 300); r.Status != gsPathDestUnknown {
		t.Errorf("index beyond end %+v", r)
	}
	// element access and fragmented transfer of DINT[300] (1200 bytes)
	if r := w("Counts", []byte{0xC4, 0}, 2, unhex(t, "01000000 02000000"), 298); r.Status != 0 {
		t.Fatalf("write Counts[298] %+v", r)
	}
	if r := read("Counts", 300); r.Status != gsPartialTransfer {
		t.Errorf("whole DINT[300] unfragmented %+v", r)
	}
	var img []byte
	for i := 0; i < 10 && len(img) < 1200; i++ {
		d := binary.LittleEndian.AppendUint16(nil, 300)
		d = binary.LittleEndian.AppendUint32(d, uint32(len(img)))
		r := c.rr(cipReq(svcReadTagFragmented, symbolic("Counts"), d))
		if (r.Status != 0 && r.Status != gsPartialTransfer) || r.Data[0] != 0xC4 {
			t.Fatalf("fragment at %d: %+v", len(img), r)
		}
		img = append(img, r.Data[2:]...)
		if r.Status == 0 {
			break
		}
	}
	if len(img) != 1200 || binary.LittleEndian.Uint32(img[0:]) != 7 || binary.LittleEndian.Uint32(img[298*4:]) != 1 ||
		binary.LittleEndian.Uint32(img[299*4:]) != 2 {
		t.Fatalf("fragmented read: %d bytes", len(img))
	}
	// Write Tag Fragmented: elements 100..101 through byte offset 400 of the whole tag
	d := unhex(t, "c400 2c01 90010000 0a000000 0b000000")
	if r := c.rr(cipReq(svcWriteTagFragmented, symbolic("Counts"), d)); r.Status != 0 {
		t.Fatalf("write fragmented %+v", r)
	}
	if r := read("Counts", 3, 99); !bytes.Equal(r.Data, unhex(t, "c400 07000000 0a000000 0b000000")) {
		t.Fatalf("after fragmented write %+v", r)
	}
	// tag list through the Symbol object
	r = c.rr(cipReq(svcGetInstanceAttributeList, []byte{0x20, 0x6B, 0x25, 0, 0, 0}, unhex(t, "0200 0100 0200")))
	if r.Status != 0 || !bytes.Contains(r.Data, []byte("Pump_Run")) || !bytes.Contains(r.Data, unhex(t, "0600 436f756e7473 c420")) {
		t.Fatalf("tag list %+v", r)
	}
	if n := len(tcp.Events.OfType(evWrite)); n != 6 {
		t.Errorf("%d write events, want 6", n)
	}
}

// TestMultipleService: a Multiple Service Packet with a failing member.
func TestMultipleService(t *testing.T) {
	_, _, tcp, _ := serve(t, "logix", 7)
	c := dial(t, tcp.Addr)
	c.register()
	reqs := [][]byte{
		cipReq(svcReadTag, symbolic("Speed"), []byte{1, 0}),
		cipReq(svcReadTag, symbolic("Missing"), []byte{1, 0}),
		cipReq(svcGetAttributeSingle, logical(1, 1, 7), nil),
	}
	d := binary.LittleEndian.AppendUint16(nil, uint16(len(reqs)))
	off := 2 + 2*len(reqs)
	for _, q := range reqs {
		d = binary.LittleEndian.AppendUint16(d, uint16(off))
		off += len(q)
	}
	for _, q := range reqs {
		d = append(d, q...)
	}
	r := c.rr(cipReq(svcMultipleService, logical(2, 1), d))
	if r.Status != gsEmbeddedServiceError || binary.LittleEndian.Uint16(r.Data) != 3 {
		t.Fatalf("MSP %+v", r)
	}
	var st []byte
	for i := 0; i < 3; i++ {
		o := binary.LittleEndian.Uint16(r.Data[2+2*i:])
		st = append(st, r.Data[o+2])
	}
	if !bytes.Equal(st, []byte{0, gsPathSegmentError, 0}) {
		t.Fatalf("embedded statuses % x", st)
	}
	// lying offsets
	bad := append([]byte{2, 0, 0xFF, 0xFF, 6, 0}, reqs[0]...)
	if r := c.rr(cipReq(svcMultipleService, logical(2, 1), bad)); r.Status != gsInvalidParameter {
		t.Fatalf("bad offsets %+v", r)
	}
	// absurd count
	if r := c.rr(cipReq(svcMultipleService, logical(2, 1), []byte{0xFF, 0xFF, 6, 0})); r.Status != gsNotEnoughData {
		t.Fatalf("absurd count %+v", r)
	}
}

// TestConnected: Forward Open, connected reads over SendUnitData, Unconnected Send, Forward
// Close.
func TestConnected(t *testing.T) {
	_, _, tcp, _ := serve(t, "logix", 8)
	c := dial(t, tcp.Addr)
	c.register()
	ot := c.forwardOpen(0xABCD0001, 7)
	r := c.unit(ot, 0xABCD0001, 1, cipReq(svcReadTag, symbolic("Speed"), []byte{1, 0}))
	if r.Status != 0 || !bytes.Equal(r.Data, unhex(t, "c300 aa05")) {
		t.Fatalf("connected read %+v", r)
	}
	// an unknown connection id is discarded: the next request is answered
	c.send(frame(cmdSendUnitData, c.session, "icsnare!", unitData(ot+1, 2, cipReq(svcReadTag, symbolic("Speed"), []byte{1, 0}))))
	r = c.unit(ot, 0xABCD0001, 3, cipReq(svcGetAttributeSingle, logical(1, 1, 1), nil))
	if r.Status != 0 {
		t.Fatalf("after unknown connection %+v", r)
	}
	// duplicate Forward Open
	fo := cipReq(svcForwardOpen, logical(6, 1), append(unhex(t, "0a0e 00000000 01000000 0700 3713 feca0000 03000000 80841e00 f443 80841e00 f443 a3 03"),
		0x01, 0x00, 0x20, 0x02, 0x24, 0x01))
	if r := c.rr(fo); r.Status != gsConnectionFailure || r.Ext[0] != 0x0100 || len(r.Data) != 10 {
		t.Fatalf("duplicate Forward Open %+v", r)
	}
	// Unconnected Send to backplane slot 0 carrying a Read Tag
	msg := cipReq(svcReadTag, symbolic("Mode"), []byte{1, 0})
	us := append([]byte{0x0A, 0x0E, byte(len(msg)), 0}, msg...)
	if len(msg)%2 == 1 {
		us = append(us, 0)
	}
	us = append(us, 1, 0, 0x01, 0x00)
	// the reply is the embedded request's (CIP Vol. 1, 3-5.5.2)
	_, d := c.call(cmdSendRRData, rrData(cipReq(svcUnconnectedSend, logical(6, 1), us)))
	items, _ := parseCPF(d[6:], nil)
	if r := parseReply(t, items[1].Data); r.Service != 0x80|svcReadTag || !bytes.Equal(r.Data, unhex(t, "c200 02")) {
		t.Fatalf("Unconnected Send reply %+v", r)
	}
	// eight connections per TCP connection: seven more fit, the ninth is refused
	for i := uint16(0); i < 7; i++ {
		c.forwardOpen(0xABCD0100+uint32(i), 100+i)
	}
	nine := cipReq(svcForwardOpen, logical(6, 1), append(unhex(t, "0a0e 00000000 01000000 0900 3713 feca0000 03000000 80841e00 f443 80841e00 f443 a3 03"),
		0x01, 0x00, 0x20, 0x02, 0x24, 0x01))
	if r := c.rr(nine); r.Status != gsConnectionFailure || r.Ext[0] != extNoMoreConnections {
		t.Fatalf("ninth Forward Open %+v", r)
	}
	// Forward Close, twice
	fc := cipReq(svcForwardClose, logical(6, 1), append(unhex(t, "0a0e 0700 3713 feca0000 03 00"), 0x01, 0x00, 0x20, 0x02, 0x24, 0x01))
	if r := c.rr(fc); r.Status != 0 || !bytes.Equal(r.Data, unhex(t, "0700 3713 feca0000 0000")) {
		t.Fatalf("Forward Close %+v", r)
	}
	if r := c.rr(fc); r.Status != gsConnectionFailure || r.Ext[0] != extConnectionNotFound {
		t.Fatalf("second Forward Close %+v", r)
	}
}

// TestUDPAndBroadcast: only discovery over UDP; a broadcast is answered from the host.
func TestUDPAndBroadcast(t *testing.T) {
	svc, p := configure(t, "default")
	h := protocoltest.Host(p, netip.MustParseAddr("198.18.70.20"), 9)
	rec := &protocoltest.Recorder{}
	s := testSession(h, rec, protocols.UDP)
	var got [][]byte
	reply := func(b []byte) { got = append(got, append([]byte(nil), b...)) }
	svc.ServePacket(s.Context(), s, frame(cmdRegisterSession, 0, "", []byte{1, 0, 0, 0}), reply)
	if len(got) != 1 {
		t.Fatalf("%d replies", len(got))
	}
	if h, _ := parseHeader(got[0]); h.Status != statusInvalidCommand {
		t.Fatalf("RegisterSession over UDP: %+v", h)
	}
	svc.ServePacket(s.Context(), s, frame(cmdListIdentity, 0, "", nil)[:20], reply)
	svc.ServePacket(s.Context(), s, append(frame(cmdListIdentity, 0, "", nil), 0), reply)
	svc.ServeBroadcast(s.Context(), s, netip.MustParseAddr("198.18.70.255"), frame(cmdRegisterSession, 0, "", []byte{1, 0, 0, 0}), reply)
	if len(got) != 1 {
		t.Fatalf("answered a truncated datagram, a lying length or a broadcast RegisterSession: %d replies", len(got))
	}
	svc.ServeBroadcast(s.Context(), s, netip.MustParseAddr("198.18.70.255"), frame(cmdListIdentity, 0, "bcast", nil), reply)
	if len(got) != 2 {
		t.Fatal("broadcast ListIdentity not answered")
	}
	if id := parseIdentityItem(t, got[1][headerLen:]); id.addr.Addr() != h.Addr {
		t.Fatalf("broadcast answer names %v", id.addr)
	}
	if n := len(rec.OfType(evBadFrame)); n != 2 {
		t.Fatalf("%d bad_frame events", n)
	}
}

// TestEvents: one event per request with the command, services and tags.
func TestEvents(t *testing.T) {
	_, _, tcp, _ := serve(t, "default", 10)
	c := dial(t, tcp.Addr)
	c.register()
	c.rr(cipReq(svcWriteTag, symbolic("SCADA"), []byte{0xC2, 0, 1, 0, 9}))
	c.call(cmdListIdentity, nil)
	c.send(frame(cmdUnRegisterSession, c.session, "", nil))
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.c.Read(make([]byte, 1))
	var ev []*protocols.Event
	for i := 0; i < 100 && len(ev) < 4; i++ {
		time.Sleep(10 * time.Millisecond)
		ev = tcp.Events.Events()
	}
	if len(ev) != 4 {
		t.Fatalf("%d events", len(ev))
	}
	fields := func(e *protocols.Event) map[string]any {
		m := map[string]any{}
		for _, f := range e.Fields {
			m[f.Key] = f.Value
		}
		return m
	}
	w := ev[1]
	f := fields(w)
	if w.Type != evWrite || f["command"] != "send_rr_data" || f["tags"].([]string)[0] != "SCADA" ||
		f["cip_services"].([]string)[0] != "write_tag" || f["general_status"] != 0 || len(w.Request) == 0 || len(w.Response) == 0 {
		t.Fatalf("write event %s %v", w.Type, f)
	}
	if f := fields(ev[3]); f["command"] != "unregister_session" || f["no_reply"] != true {
		t.Fatalf("unregister event %v", f)
	}
}
