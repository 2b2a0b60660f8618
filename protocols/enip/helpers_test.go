package enip

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// testAddr returns a random loopback address of this package's range 127.70.0.0/16.
func testAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 70, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// configure loads a testdata profile and configures the service, allowing only the
// warning about cpppo's serial that Conpot's default template draws.
func configure(t testing.TB, dir string) (*service, *profiles.Profile) {
	t.Helper()
	p := protocoltest.Profile(t, "testdata/"+dir)
	svc, err := protocol{}.Configure(p.Sections[Name], nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range p.Warnings() {
		if !strings.Contains(w, "cpppo") {
			t.Fatalf("template warning: %s", w)
		}
	}
	return svc.(*service), p
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frame builds an encapsulation frame.
func frame(cmd uint16, session uint32, ctx string, data []byte) []byte {
	h := header{Command: cmd, Session: session}
	copy(h.Context[:], ctx)
	return append(appendHeader(nil, &h, len(data), 0), data...)
}

// cipReq builds a Message Router request.
func cipReq(svc byte, path, data []byte) []byte {
	b := append([]byte{svc, byte(len(path) / 2)}, path...)
	return append(b, data...)
}

// logical builds a class/instance/attribute path with 8- or 16-bit segments.
func logical(class, inst uint32, attr ...uint32) []byte {
	seg := func(typ byte, v uint32) []byte {
		if v < 256 {
			return []byte{0x20 | typ<<2, byte(v)}
		}
		return []byte{0x21 | typ<<2, 0, byte(v), byte(v >> 8)}
	}
	p := append(seg(0, class), seg(1, inst)...)
	for _, a := range attr {
		p = append(p, seg(4, a)...)
	}
	return p
}

// symbolic builds a tag path with optional element indices.
func symbolic(name string, idx ...uint32) []byte {
	p := append([]byte{0x91, byte(len(name))}, name...)
	if len(name)%2 == 1 {
		p = append(p, 0)
	}
	for _, i := range idx {
		if i < 256 {
			p = append(p, 0x28, byte(i))
		} else {
			p = append(p, 0x29, 0, byte(i), byte(i>>8))
		}
	}
	return p
}

// rrData wraps a CIP request into SendRRData's interface handle, timeout and CPF.
func rrData(cip []byte) []byte {
	b := make([]byte, 6, 16+len(cip))
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = appendItemHeader(b, itemNullAddress, 0)
	b = appendItemHeader(b, itemUnconnectedData, len(cip))
	return append(b, cip...)
}

// unitData wraps a CIP request into SendUnitData for connection id.
func unitData(id uint32, seq uint16, cip []byte) []byte {
	b := make([]byte, 6, 24+len(cip))
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = appendItemHeader(b, itemConnectedAddress, 4)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = appendItemHeader(b, itemConnectedData, 2+len(cip))
	b = binary.LittleEndian.AppendUint16(b, seq)
	return append(b, cip...)
}

// client is a raw EtherNet/IP client written from the specification.
type client struct {
	t       testing.TB
	c       net.Conn
	session uint32
}

func dial(t testing.TB, addr netip.AddrPort) *client {
	t.Helper()
	return dialAddr(t, addr.String())
}

func dialAddr(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

func (c *client) send(b []byte) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads one frame.
func (c *client) recv() (header, []byte) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb := make([]byte, headerLen)
	if _, err := io.ReadFull(c.c, hb); err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	h, _ := parseHeader(hb)
	data := make([]byte, h.Length)
	if _, err := io.ReadFull(c.c, data); err != nil {
		c.t.Fatalf("read data: %v", err)
	}
	return h, data
}

func (c *client) call(cmd uint16, data []byte) (header, []byte) {
	c.t.Helper()
	c.send(frame(cmd, c.session, "icsnare!", data))
	h, d := c.recv()
	if h.Command != cmd || string(h.Context[:]) != "icsnare!" {
		c.t.Fatalf("reply header %+v to command 0x%04x", h, cmd)
	}
	return h, d
}

func (c *client) register() {
	c.t.Helper()
	h, d := c.call(cmdRegisterSession, []byte{1, 0, 0, 0})
	if h.Status != 0 || h.Session == 0 || len(d) != 4 {
		c.t.Fatalf("RegisterSession: %+v % x", h, d)
	}
	c.session = h.Session
}

// cipReply is a decoded Message Router reply.
type cipReply struct {
	Service, Status byte
	Ext             []uint16
	Data            []byte
}

func parseReply(t testing.TB, b []byte) cipReply {
	t.Helper()
	if len(b) < 4 || len(b) < 4+2*int(b[3]) {
		t.Fatalf("short CIP reply % x", b)
	}
	r := cipReply{Service: b[0], Status: b[2]}
	for i := 0; i < int(b[3]); i++ {
		r.Ext = append(r.Ext, binary.LittleEndian.Uint16(b[4+2*i:]))
	}
	r.Data = b[4+2*int(b[3]):]
	return r
}

// rr sends an unconnected request and returns the reply.
func (c *client) rr(cip []byte) cipReply {
	c.t.Helper()
	h, d := c.call(cmdSendRRData, rrData(cip))
	if h.Status != 0 {
		c.t.Fatalf("SendRRData status 0x%x", h.Status)
	}
	items, err := parseCPF(d[6:], nil)
	if err != nil || len(items) != 2 || items[0].Type != itemNullAddress || items[1].Type != itemUnconnectedData {
		c.t.Fatalf("SendRRData reply CPF %v %+v", err, items)
	}
	r := parseReply(c.t, items[1].Data)
	if r.Service != cip[0]|0x80 {
		c.t.Fatalf("reply service 0x%02x to 0x%02x", r.Service, cip[0])
	}
	return r
}

// unit sends a connected request and returns the reply, checking the connection id and
// sequence count.
func (c *client) unit(otID, toID uint32, seq uint16, cip []byte) cipReply {
	c.t.Helper()
	h, d := c.call(cmdSendUnitData, unitData(otID, seq, cip))
	if h.Status != 0 {
		c.t.Fatalf("SendUnitData status 0x%x", h.Status)
	}
	items, err := parseCPF(d[6:], nil)
	if err != nil || len(items) != 2 || items[0].Type != itemConnectedAddress || items[1].Type != itemConnectedData {
		c.t.Fatalf("SendUnitData reply CPF %v %+v", err, items)
	}
	if id := binary.LittleEndian.Uint32(items[0].Data); id != toID {
		c.t.Fatalf("reply on connection 0x%08x, want 0x%08x", id, toID)
	}
	if s := binary.LittleEndian.Uint16(items[1].Data); s != seq {
		c.t.Fatalf("sequence %d, want %d", s, seq)
	}
	return parseReply(c.t, items[1].Data[2:])
}

// forwardOpen opens a class 3 connection to the Message Router and returns its O->T id.
func (c *client) forwardOpen(toID uint32, serial uint16) uint32 {
	c.t.Helper()
	d := []byte{0x0A, 0x0E}
	d = binary.LittleEndian.AppendUint32(d, 0)    // O->T id: the target chooses
	d = binary.LittleEndian.AppendUint32(d, toID) // T->O id
	d = binary.LittleEndian.AppendUint16(d, serial)
	d = binary.LittleEndian.AppendUint16(d, 0x1337)
	d = binary.LittleEndian.AppendUint32(d, 0xCAFE)
	d = append(d, 3, 0, 0, 0)
	d = binary.LittleEndian.AppendUint32(d, 2000000)
	d = binary.LittleEndian.AppendUint16(d, 0x43F4) // point-to-point, 500 bytes
	d = binary.LittleEndian.AppendUint32(d, 2000000)
	d = binary.LittleEndian.AppendUint16(d, 0x43F4)
	d = append(d, 0xA3) // class 3, application trigger, server
	path := []byte{0x01, 0x00, 0x20, 0x02, 0x24, 0x01}
	d = append(d, byte(len(path)/2))
	d = append(d, path...)
	r := c.rr(cipReq(svcForwardOpen, logical(6, 1), d))
	if r.Status != 0 || len(r.Data) != 26 {
		c.t.Fatalf("Forward Open: %+v", r)
	}
	if binary.LittleEndian.Uint32(r.Data[4:]) != toID {
		c.t.Fatalf("Forward Open reply T->O id % x", r.Data)
	}
	return binary.LittleEndian.Uint32(r.Data)
}

func testSession(h *protocols.Host, rec protocols.Emitter, transport string) *protocols.Session {
	return &protocols.Session{ID: "t", Protocol: Name, Transport: transport, Host: h,
		Local:  netip.AddrPortFrom(h.Addr, Port),
		Remote: netip.MustParseAddrPort("192.0.2.99:40000"),
		Log:    slog.New(slog.DiscardHandler), Events: rec, MaxPayload: 4096}
}

// serve runs the service on TCP and UDP port 44818 of a fresh address in 127.70/16 (an
// ephemeral port when the test cannot bind it).
func serve(t testing.TB, dir string, seed uint64) (*service, *protocols.Host, *protocoltest.Server, *protocoltest.Server) {
	t.Helper()
	svc, p := configure(t, dir)
	addr := testAddr()
	h := protocoltest.Host(p, addr, seed)
	tcp := protocoltest.ServeTCP(t, Name, svc, h, netip.AddrPortFrom(addr, Port).String())
	udp := protocoltest.ServeUDP(t, Name, svc, h, netip.AddrPortFrom(addr, Port).String())
	return svc, h, tcp, udp
}
