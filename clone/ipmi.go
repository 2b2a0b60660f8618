package clone

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

func init() { register(ipmiProber{}) }

// IPMI requests the prober sends, all outside a session (no credentials): RMCP presence
// ping, and the App commands a BMC answers session-less.
const (
	ipmiNetFnApp         = 0x06
	ipmiGetDeviceID      = 0x01
	ipmiGetSystemGUID    = 0x37
	ipmiGetAuthCaps      = 0x38
	ipmiGetCipherSuites  = 0x54
	ipmiMaxCipherPages   = 8
	ipmiMaxStrayPerQuery = 16
)

// ipmiCommands are the only IPMI commands the prober builds: reads that need no session.
var ipmiCommands = map[byte]string{ipmiGetDeviceID: "Get Device ID", ipmiGetSystemGUID: "Get System GUID",
	ipmiGetAuthCaps: "Get Channel Authentication Capabilities", ipmiGetCipherSuites: "Get Channel Cipher Suites"}

// ipmiSuites are the cipher suites the sensor implements.
var ipmiSuites = []byte{0, 1, 2, 3, 6, 7, 8, 15, 16, 17}

// rmcpPing is an ASF presence ping (message tag 0x49) that asks for no RMCP ACK.
func rmcpPing() []byte {
	return []byte{0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x49, 0x00, 0x00}
}

// parsePong decodes an ASF presence pong: the OEM IANA number and whether IPMI is supported.
func parsePong(b []byte) (iana uint32, ipmi bool, err error) {
	if len(b) < 12 || b[0] != 0x06 || b[3] != 0x06 || binary.BigEndian.Uint32(b[4:]) != 4542 {
		return 0, false, errors.New("ipmi: not an ASF message")
	}
	if b[8] != 0x40 {
		return 0, false, fmt.Errorf("ipmi: ASF type %#02x, not a pong", b[8])
	}
	if len(b) < 12+int(b[11]) || b[11] < 9 {
		return 0, false, errors.New("ipmi: short pong")
	}
	d := b[12:]
	return binary.BigEndian.Uint32(d), d[8]&0x80 != 0, nil
}

func ipmiChecksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// ipmiRequest builds a session-less IPMI v1.5 message (authentication type none) of an
// App command; any other command is refused.
func ipmiRequest(cmd, seq byte, data []byte) ([]byte, error) {
	if _, ok := ipmiCommands[cmd]; !ok {
		return nil, fmt.Errorf("ipmi: refusing to send command %#02x: the cloner only reads outside a session", cmd)
	}
	msg := []byte{0x20, ipmiNetFnApp << 2, 0, 0x81, seq << 2, cmd}
	msg[2] = ipmiChecksum(msg[:2])
	msg = append(msg, data...)
	msg = append(msg, ipmiChecksum(msg[3:]))
	b := []byte{0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(msg))}
	return append(b, msg...), nil
}

// parseIPMIResponse decodes a session-less IPMI v1.5 response to cmd/seq and returns the
// completion code and the data.
func parseIPMIResponse(b []byte, cmd, seq byte) (byte, []byte, error) {
	if len(b) < 14 || b[0] != 0x06 || b[3]&0x1F != 0x07 {
		return 0, nil, errors.New("ipmi: not an RMCP IPMI message")
	}
	p := b[4:]
	if p[0] == 0x06 {
		return 0, nil, errors.New("ipmi: an RMCP+ (v2.0) message outside a session")
	}
	off := 9
	if p[0] != 0 {
		off += 16 // an authentication code
	}
	if len(p) < off+1 {
		return 0, nil, errors.New("ipmi: short session header")
	}
	n := int(p[off])
	msg := p[off+1:]
	if n < 8 || len(msg) < n {
		return 0, nil, errors.New("ipmi: message length beyond the datagram")
	}
	msg = msg[:n]
	if ipmiChecksum(msg[:2]) != msg[2] || ipmiChecksum(msg[3:n-1]) != msg[n-1] {
		return 0, nil, errors.New("ipmi: bad checksum")
	}
	if msg[1]>>2 != ipmiNetFnApp+1 || msg[5] != cmd || msg[4]>>2 != seq {
		return 0, nil, errors.New("ipmi: a response to another request")
	}
	return msg[6], msg[7 : n-1], nil
}

type ipmiProber struct{}

func (ipmiProber) Name() string     { return "ipmi" }
func (ipmiProber) DefaultPort() int { return 623 }

type ipmiClient struct {
	p    *Probe
	conn net.Conn
	seq  byte
	buf  [1024]byte
}

// exchange sends one datagram (counted, retried once after silence) and returns the first
// answer accept takes.
func (c *ipmiClient) exchange(ctx context.Context, req []byte, accept func([]byte) bool) error {
	for try := 0; try < 2; try++ {
		if err := c.p.Request(ctx); err != nil {
			return err
		}
		c.conn.SetDeadline(c.p.Deadline())
		if _, err := c.conn.Write(req); err != nil {
			return fmt.Errorf("ipmi: %w", err)
		}
		for stray := 0; stray < ipmiMaxStrayPerQuery; stray++ {
			n, err := c.conn.Read(c.buf[:])
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return fmt.Errorf("ipmi: %w", err)
			}
			if accept(c.buf[:n]) {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errSilent
}

// call sends one session-less command and returns completion code and data.
func (c *ipmiClient) call(ctx context.Context, cmd byte, data []byte) (byte, []byte, error) {
	c.seq = (c.seq + 1) & 0x3F
	seq := c.seq
	req, err := ipmiRequest(cmd, seq, data)
	if err != nil {
		return 0, nil, err
	}
	var cc byte
	var out []byte
	err = c.exchange(ctx, req, func(b []byte) bool {
		x, d, err := parseIPMIResponse(b, cmd, seq)
		if err != nil {
			return false
		}
		cc, out = x, append([]byte(nil), d...)
		return true
	})
	return cc, out, err
}

func (ipmiProber) Probe(ctx context.Context, p *Probe) error {
	d := net.Dialer{Timeout: p.Opts.Timeout}
	conn, err := d.DialContext(ctx, "udp", p.Addr())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAbsent, err)
	}
	defer conn.Close()
	c := &ipmiClient{p: p, conn: conn}
	rep, tpl := p.Report, p.Template
	quit := func(err error) bool { return errors.Is(err, ErrBudget) || ctx.Err() != nil }

	// RMCP presence ping.
	pong := false
	err = c.exchange(ctx, rmcpPing(), func(b []byte) bool {
		iana, ipmi, err := parsePong(b)
		if err != nil {
			return false
		}
		pong = true
		rep.Find("RMCP pong: OEM IANA %d, IPMI supported %v", iana, ipmi)
		return true
	})
	if quit(err) {
		return err
	}
	if !pong {
		rep.Refuse("RMCP presence ping: %v", err)
	}
	// Get Channel Authentication Capabilities, v2.0 (extended data) and v1.5.
	var caps []byte
	for _, ch := range []byte{0x8E, 0x0E} {
		cc, data, err := c.call(ctx, ipmiGetAuthCaps, []byte{ch, 0x04})
		if quit(err) {
			return err
		}
		v := map[byte]string{0x8E: "v2.0", 0x0E: "v1.5"}[ch]
		if !pong && caps == nil && err != nil {
			// Nothing answers the ping nor the first request: no BMC there.
			return fmt.Errorf("%w: no RMCP pong and no IPMI answer: %v", ErrAbsent, err)
		}
		switch {
		case err != nil:
			rep.Refuse("Get Channel Authentication Capabilities (%s): %v", v, err)
		case cc != 0 || len(data) < 8:
			rep.Refuse("Get Channel Authentication Capabilities (%s): completion code %#02x", v, cc)
		default:
			rep.Find("Get Channel Authentication Capabilities (%s): channel %d, auth types %#02x, status %#02x, extended %#02x, OEM %d",
				v, data[0], data[1], data[2], data[3], uint32(data[4])|uint32(data[5])<<8|uint32(data[6])<<16)
			if caps == nil {
				caps = data
			}
		}
	}
	if caps == nil {
		if pong {
			return fmt.Errorf("%w: the device pongs but answers no IPMI request", ErrAbsent)
		}
		return fmt.Errorf("%w: no RMCP pong and no IPMI answer", ErrAbsent)
	}
	var b strings.Builder
	// Get Device ID: BMCs answer it only inside a session, some outside.
	cc, dev, err := c.call(ctx, ipmiGetDeviceID, nil)
	if quit(err) {
		return err
	}
	if err == nil && cc == 0 && len(dev) >= 11 {
		manu := uint32(dev[6]) | uint32(dev[7])<<8 | uint32(dev[8]&0x0F)<<16
		prod := binary.LittleEndian.Uint16(dev[9:])
		fw := fmt.Sprintf("%d.%02x", dev[2]&0x7F, dev[3])
		rep.Find("Get Device ID outside a session: device %#02x revision %d, firmware %s, IPMI %d.%d, manufacturer %d, product %#04x",
			dev[0], dev[1]&0x0F, fw, dev[4]&0x0F, dev[4]>>4, manu, prod)
		fmt.Fprintf(&b, "    <device_info>\n        <manufacturer_id>%d</manufacturer_id>\n        <product_id>0x%04X</product_id>\n        <device_id>0x%02X</device_id>\n        <device_revision>%d</device_revision>\n        <firmware>%s</firmware>\n    </device_info>\n",
			manu, prod, dev[0], dev[1]&0x0F, fw)
		if tpl.Unit == "" {
			tpl.Unit = fmt.Sprintf("BMC of manufacturer %d, product %#04x", manu, prod)
		}
	} else {
		what := "no answer"
		if err == nil {
			what = fmt.Sprintf("completion code %#02x", cc)
		}
		rep.Refuse("Get Device ID outside a session: %s", what)
		rep.Skip("device identity (manufacturer, product, firmware): the device tells it only inside a session; the clone keeps the sensor's default BMC (edit <device_info>)")
	}
	// Get System GUID: per host in the clone (the sensor draws each host's own).
	if cc, g, err := c.call(ctx, ipmiGetSystemGUID, nil); quit(err) {
		return err
	} else if err == nil && cc == 0 && len(g) >= 16 {
		rep.Find("system GUID % x (each copy draws its own)", g[:16])
	} else {
		rep.Refuse("Get System GUID: %v cc %#02x", err, cc)
	}
	// Cipher suites (RMCP+), page by page.
	var recs []byte
	for page := byte(0); page < ipmiMaxCipherPages; page++ {
		cc, d, err := c.call(ctx, ipmiGetCipherSuites, []byte{0x0E, 0x00, 0x80 | page})
		if quit(err) {
			return err
		}
		if err != nil || cc != 0 || len(d) < 1 {
			if page == 0 {
				rep.Refuse("Get Channel Cipher Suites: %v cc %#02x", err, cc)
			}
			break
		}
		recs = append(recs, d[1:]...)
		if len(d) < 17 {
			break
		}
	}
	var suites, unsupported []byte
	for i := 0; i+1 < len(recs); i++ {
		if recs[i] == 0xC0 {
			id := recs[i+1]
			if slices.Contains(ipmiSuites, id) {
				if !slices.Contains(suites, id) {
					suites = append(suites, id)
				}
			} else if !slices.Contains(unsupported, id) {
				unsupported = append(unsupported, id)
			}
		}
	}
	v20 := caps[1]&0x80 != 0 && caps[3]&0x02 != 0
	if len(suites) > 0 {
		var ss []string
		for _, s := range suites {
			ss = append(ss, fmt.Sprint(s))
		}
		fmt.Fprintf(&b, "    <cipher_suites>%s</cipher_suites>\n", strings.Join(ss, ","))
		rep.Find("cipher suites %s", strings.Join(ss, ","))
	} else if v20 {
		rep.Notes = append(rep.Notes, "IPMI v2.0 without a cipher suite list: the clone offers the sensor's default suites")
	}
	if len(unsupported) > 0 {
		rep.Skip("cipher suites %v: the sensor does not implement them", unsupported)
	}
	// IPMI v1.5 authentication types.
	var types []string
	if caps[3]&0x01 != 0 || caps[1]&0x80 == 0 {
		for bit, name := range map[byte]string{0: "none", 2: "md5", 4: "password"} {
			if caps[1]&(1<<bit) != 0 {
				types = append(types, name)
			}
		}
		slices.Sort(types)
		if caps[1]&0x02 != 0 {
			rep.Skip("IPMI v1.5 MD2 authentication: the sensor does not implement it")
		}
	}
	if len(types) > 0 {
		fmt.Fprintf(&b, "    <auth_types>%s</auth_types>\n", strings.Join(types, ","))
	}
	if caps[2]&0x07 != 0x04 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("login status %#02x (null user names or anonymous login): the clone announces non-null user names only", caps[2]&0x07))
	}
	if !v20 {
		rep.Notes = append(rep.Notes, "the device does not do IPMI v2.0: the clone still answers RMCP+")
	}
	// No user is known: the cloner never logs in, so the clone lets nobody in.
	rep.Skip("users and everything inside a session (sensors, FRU, SEL, LAN configuration): the cloner never logs in; the clone lets nobody in (add a <user_list>)")
	tpl.Section("ipmi", 623, b.String())
	return nil
}
