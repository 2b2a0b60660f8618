package clone

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
)

func init() { register(enipProber{}) }

// EtherNet/IP encapsulation commands the prober sends: the three List commands, which
// need no session (CIP Vol. 2, ch. 2). It sends nothing else.
const (
	enipListServices   = 0x0004
	enipListIdentity   = 0x0063
	enipListInterfaces = 0x0064
	enipHeaderLen      = 24
	enipMaxReply       = 4096
)

// enipCommands are the only encapsulation commands the prober builds.
var enipCommands = map[uint16]string{enipListServices: "ListServices", enipListIdentity: "ListIdentity", enipListInterfaces: "ListInterfaces"}

// enipRequest builds a List command with sender context ctx.
func enipRequest(cmd uint16, ctx uint64) ([]byte, error) {
	if _, ok := enipCommands[cmd]; !ok {
		return nil, fmt.Errorf("enip: refusing to send command %#04x: the cloner only lists", cmd)
	}
	b := make([]byte, enipHeaderLen)
	binary.LittleEndian.PutUint16(b, cmd)
	binary.LittleEndian.PutUint64(b[12:], ctx)
	return b, nil
}

// enipItem is one item of a List reply.
type enipItem struct {
	typ  uint16
	data []byte
}

// parseEnipReply checks a List reply's header (command, status, context, length) and
// returns its items.
func parseEnipReply(b []byte, cmd uint16, ctx uint64) ([]enipItem, error) {
	if len(b) < enipHeaderLen {
		return nil, errors.New("enip: short header")
	}
	if c := binary.LittleEndian.Uint16(b); c != cmd {
		return nil, fmt.Errorf("enip: a reply to command %#04x, not %#04x", c, cmd)
	}
	n := int(binary.LittleEndian.Uint16(b[2:]))
	if len(b) != enipHeaderLen+n {
		return nil, fmt.Errorf("enip: header length %d, %d bytes follow", n, len(b)-enipHeaderLen)
	}
	if st := binary.LittleEndian.Uint32(b[8:]); st != 0 {
		return nil, &enipStatus{st}
	}
	if binary.LittleEndian.Uint64(b[12:]) != ctx {
		return nil, errors.New("enip: a reply with another sender context")
	}
	d := b[enipHeaderLen:]
	if len(d) < 2 {
		return nil, errors.New("enip: no item count")
	}
	count := int(binary.LittleEndian.Uint16(d))
	d = d[2:]
	var items []enipItem
	for i := 0; i < count; i++ {
		if len(d) < 4 {
			return items, errors.New("enip: an item count beyond the data")
		}
		l := int(binary.LittleEndian.Uint16(d[2:]))
		if len(d) < 4+l {
			return items, errors.New("enip: an item length beyond the data")
		}
		items = append(items, enipItem{typ: binary.LittleEndian.Uint16(d), data: d[4 : 4+l]})
		d = d[4+l:]
	}
	return items, nil
}

// enipStatus is a non-zero encapsulation status.
type enipStatus struct{ code uint32 }

func (e *enipStatus) Error() string { return fmt.Sprintf("enip: encapsulation status %#x", e.code) }

// enipIdentity is the CIP Identity item of a ListIdentity reply (type 0x0C).
type enipIdentity struct {
	version               uint16
	addr                  netip.AddrPort
	vendor, devType, code uint16
	major, minor          uint8
	status                uint16
	serial                uint32
	name                  string
	state                 uint8
	hasState              bool
}

func parseEnipIdentity(d []byte) (enipIdentity, error) {
	var id enipIdentity
	if len(d) < 33 {
		return id, errors.New("enip: short identity item")
	}
	id.version = binary.LittleEndian.Uint16(d)
	var a [4]byte
	copy(a[:], d[6:10])
	id.addr = netip.AddrPortFrom(netip.AddrFrom4(a), binary.BigEndian.Uint16(d[4:]))
	id.vendor = binary.LittleEndian.Uint16(d[18:])
	id.devType = binary.LittleEndian.Uint16(d[20:])
	id.code = binary.LittleEndian.Uint16(d[22:])
	id.major, id.minor = d[24], d[25]
	id.status = binary.LittleEndian.Uint16(d[26:])
	id.serial = binary.LittleEndian.Uint32(d[28:])
	n := int(d[32])
	if len(d) < 33+n {
		return id, errors.New("enip: product name beyond the item")
	}
	id.name = string(d[33 : 33+n])
	if len(d) > 33+n {
		id.state, id.hasState = d[33+n], true
	}
	return id, nil
}

// enipService is one ListServices item (type 0x100: communications).
type enipService struct {
	typ, version, flags uint16
	name                string
}

func parseEnipService(it enipItem) (enipService, error) {
	if len(it.data) < 4 {
		return enipService{}, errors.New("enip: short service item")
	}
	s := enipService{typ: it.typ, version: binary.LittleEndian.Uint16(it.data), flags: binary.LittleEndian.Uint16(it.data[2:])}
	s.name = cString(it.data[4:min(len(it.data), 20)])
	return s, nil
}

type enipProber struct{}

func (enipProber) Name() string     { return "enip" }
func (enipProber) DefaultPort() int { return 44818 }

// enipTCP sends one List command on a new TCP connection and returns the items.
func enipTCP(ctx context.Context, p *Probe, cmd uint16, seq uint64) ([]enipItem, error) {
	req, err := enipRequest(cmd, seq)
	if err != nil {
		return nil, err
	}
	if err := p.Request(ctx); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: p.Opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", p.Addr())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(p.Deadline())
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	h := make([]byte, enipHeaderLen)
	if _, err := io.ReadFull(conn, h); err != nil {
		return nil, fmt.Errorf("enip: %w", err)
	}
	n := int(binary.LittleEndian.Uint16(h[2:]))
	if n > enipMaxReply {
		return nil, fmt.Errorf("enip: a reply of %d bytes", n)
	}
	b := append(h, make([]byte, n)...)
	if _, err := io.ReadFull(conn, b[enipHeaderLen:]); err != nil {
		return nil, fmt.Errorf("enip: %w", err)
	}
	return parseEnipReply(b, cmd, seq)
}

// enipUDP sends one List command in a datagram (retried once after silence).
func enipUDP(ctx context.Context, p *Probe, conn net.Conn, cmd uint16, seq uint64) ([]enipItem, error) {
	req, err := enipRequest(cmd, seq)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, enipMaxReply)
	last := errSilent
	for try := 0; try < 2; try++ {
		if err := p.Request(ctx); err != nil {
			return nil, err
		}
		conn.SetDeadline(p.Deadline())
		if _, err := conn.Write(req); err != nil {
			return nil, err
		}
		for stray := 0; stray < 16; stray++ {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, err
			}
			items, err := parseEnipReply(buf[:n], cmd, seq)
			if err == nil {
				return items, nil
			}
			last = err
		}
	}
	return nil, last
}

func (enipProber) Probe(ctx context.Context, p *Probe) error {
	rep, tpl := p.Report, p.Template
	type result struct {
		items []enipItem
		err   error
	}
	results := map[string]result{}
	seq := uint64(0x6963736e61726500) // the sender context: any value, echoed
	for _, cmd := range []uint16{enipListIdentity, enipListServices, enipListInterfaces} {
		seq++
		items, err := enipTCP(ctx, p, cmd, seq)
		if errors.Is(err, ErrBudget) || ctx.Err() != nil {
			return err
		}
		results["tcp "+enipCommands[cmd]] = result{items, err}
		if cmd == enipListIdentity && err != nil {
			rep.Refuse("ListIdentity over TCP: %v", err)
		}
	}
	d := net.Dialer{Timeout: p.Opts.Timeout}
	if conn, err := d.DialContext(ctx, "udp", p.Addr()); err == nil {
		for _, cmd := range []uint16{enipListIdentity, enipListServices, enipListInterfaces} {
			seq++
			items, err := enipUDP(ctx, p, conn, cmd, seq)
			if errors.Is(err, ErrBudget) || ctx.Err() != nil {
				conn.Close()
				return err
			}
			results["udp "+enipCommands[cmd]] = result{items, err}
			if err != nil {
				rep.Refuse("%s over UDP: %v", enipCommands[cmd], err)
				if cmd == enipListIdentity {
					break // a device that is silent on UDP stays so
				}
			}
		}
		conn.Close()
	}
	// The identity: from TCP, else UDP.
	var id enipIdentity
	found := false
	for _, k := range []string{"tcp ListIdentity", "udp ListIdentity"} {
		r := results[k]
		if r.err != nil {
			continue
		}
		for _, it := range r.items {
			if it.typ != 0x0C {
				continue
			}
			x, err := parseEnipIdentity(it.data)
			if err != nil {
				rep.Refuse("%s: %v", k, err)
				continue
			}
			id, found = x, true
			break
		}
		if found {
			rep.Find("%s answered", k)
			break
		}
	}
	if !found {
		return fmt.Errorf("%w: no ListIdentity answer over TCP or UDP", ErrAbsent)
	}
	for _, t := range []string{"tcp", "udp"} {
		if r, ok := results[t+" ListIdentity"]; ok && r.err == nil {
			rep.Find("%s: ListIdentity answers", t)
		} else {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: ListIdentity unanswered; the clone answers both transports", t))
		}
	}
	rep.Find("identity: vendor %d, device type %d, product code %d, revision %d.%d, status %#04x, serial %#08x, product %q, state %d",
		id.vendor, id.devType, id.code, id.major, id.minor, id.status, id.serial, id.name, id.state)
	if id.addr.Addr() != p.Target && id.addr.Addr().IsValid() {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the device names itself %s (behind NAT?); each copy names its own address", id.addr))
	}
	for _, k := range []string{"tcp ListServices", "udp ListServices"} {
		if r := results[k]; r.err == nil {
			for _, it := range r.items {
				if s, err := parseEnipService(it); err == nil {
					rep.Find("%s: type %#04x version %d flags %#04x %q (the clone serves its own: Communications, TCP and UDP class 0/1)", k, s.typ, s.version, s.flags, s.name)
				}
			}
		}
	}
	for _, k := range []string{"tcp ListInterfaces", "udp ListInterfaces"} {
		if r := results[k]; r.err == nil {
			rep.Find("%s: %d items (the clone lists none)", k, len(r.items))
		}
	}
	var b strings.Builder
	b.WriteString("    <device_info>\n")
	fmt.Fprintf(&b, "        <VendorId>%d</VendorId>\n", id.vendor)
	name := strings.TrimSpace(id.name)
	if name == "" || len(name) > 32 || !IsPrintable(name) {
		rep.Skip("product name %q: the profile holds 1-32 printable characters", id.name)
	} else {
		fmt.Fprintf(&b, "        <ProductName>%s</ProductName>\n", X(name))
		if tpl.Unit == "" {
			tpl.Unit = name
		}
	}
	fmt.Fprintf(&b, "        <DeviceType>%d</DeviceType>\n", id.devType)
	// The serial identifies the unit: each copy draws its own, with the same first hex
	// digit (vendors number their units in blocks).
	lo := uint64(id.serial) &^ 0x0FFFFFFF
	k := tpl.SeedRange("enip", "ListIdentity serial number", fmt.Sprintf("0x%08x", id.serial), lo, lo|0x0FFFFFFF)
	fmt.Fprintf(&b, "        <SerialNumber databus=\"%s\"/>\n", k)
	fmt.Fprintf(&b, "        <ProductRevision>%d.%d</ProductRevision>\n", id.major, id.minor)
	fmt.Fprintf(&b, "        <ProductCode>%d</ProductCode>\n", id.code)
	fmt.Fprintf(&b, "        <Status>0x%04X</Status>\n", id.status)
	if id.hasState {
		fmt.Fprintf(&b, "        <State>%d</State>\n", id.state)
	}
	b.WriteString("    </device_info>\n    <mode>tcp</mode>\n")
	rep.Skip("CIP objects and Logix tags: the cloner opens no session")
	tpl.Section("enip", 44818, b.String())
	return nil
}
