package clone

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// testProbe is a Probe for a fake device on addr (a test address of 127.38.30.0/24).
func testProbe(t *testing.T, addr netip.AddrPort, budget int) *Probe {
	t.Helper()
	o := &Options{Target: addr.Addr(), Rate: 5000, Timeout: 300 * time.Millisecond, Budget: budget, Interval: 50 * time.Millisecond, Community: "public"}
	return &Probe{Target: addr.Addr(), Port: int(addr.Port()), Opts: o, Template: NewTemplate(addr.Addr()),
		Report: &ProtocolReport{Name: "test"}, limiter: newLimiter(o.Rate), budget: budget, total: new(atomic.Int64), prog: &progress{}}
}

// fakeServer accepts connections on host:0 and runs handle on each.
func fakeServer(t *testing.T, host string, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// fakeModbus answers like a small direct Modbus/TCP device: holding registers 0-9 and
// 300-339, coils 0-15, device identification in two parts. It records every function.
func fakeModbus(mu *sync.Mutex, fcs *[]byte) func(net.Conn) {
	var reads305 uint16
	return func(c net.Conn) {
		hdr := make([]byte, 7)
		for {
			if _, err := io.ReadFull(c, hdr); err != nil {
				return
			}
			n := int(binary.BigEndian.Uint16(hdr[4:]))
			pdu := make([]byte, n-1)
			if _, err := io.ReadFull(c, pdu); err != nil {
				return
			}
			mu.Lock()
			*fcs = append(*fcs, pdu[0])
			mu.Unlock()
			var resp []byte
			exc := func(code byte) []byte { return []byte{pdu[0] | 0x80, code} }
			switch pdu[0] {
			case 1, 3:
				addr, qty := int(binary.BigEndian.Uint16(pdu[1:])), int(binary.BigEndian.Uint16(pdu[3:]))
				in := func(lo, hi int) bool { return addr >= lo && addr+qty <= hi }
				switch {
				case pdu[0] == 3 && (in(0, 10) || in(300, 340)):
					resp = []byte{3, byte(2 * qty)}
					for i := 0; i < qty; i++ {
						v := uint16(addr + i)
						if addr+i == 305 { // a live value: it moves with every read
							reads305++
							v = 1000 + 7*reads305
						}
						resp = binary.BigEndian.AppendUint16(resp, v)
					}
				case pdu[0] == 1 && in(0, 16):
					resp = append([]byte{1, byte((qty + 7) / 8)}, make([]byte, (qty+7)/8)...)
					resp[2] = 0x05
				default:
					resp = exc(2)
				}
			case 43:
				objs := [][2]string{{"\x00", "Fake"}, {"\x01", "FK-1"}, {"\x02", "V1.0"}, {"\x06", "line7-pump12"}}
				part := objs[:2]
				more, next := byte(0xFF), byte(2)
				if pdu[3] >= 2 {
					part, more, next = objs[2:], 0, 0
				}
				resp = []byte{43, 14, pdu[2], 0x83, more, next, byte(len(part))}
				for _, o := range part {
					resp = append(append(resp, o[0][0], byte(len(o[1]))), o[1]...)
				}
			default:
				resp = exc(1)
			}
			out := append(append([]byte(nil), hdr[:4]...), 0, byte(len(resp)+1), hdr[6])
			c.Write(append(out, resp...))
		}
	}
}

func TestModbusProbe(t *testing.T) {
	var fcs []byte
	var mu sync.Mutex
	addr := fakeServer(t, "127.38.30.1", fakeModbus(&mu, &fcs))
	p := testProbe(t, addr, 4000)
	if err := (modbusProber{}).Probe(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, fc := range fcs {
		if !modbusReadFCs[fc] {
			t.Errorf("the prober sent function %d", fc)
		}
	}
	x := p.Template.sections["modbus"].body
	for _, want := range []string{"<mode>tcp</mode>", `<slave id="255">`, "<VendorName>Fake</VendorName>", "<MajorMinorRevision>V1.0</MajorMinorRevision>",
		"<starting_address>40001</starting_address>\n                    <size>10</size>", "<starting_address>40301</starting_address>\n                    <size>40</size>",
		"<starting_address>1</starting_address>\n                    <size>16</size>", `<UserApplicationName databus="HostName"/>`} {
		if !strings.Contains(x, want) {
			t.Errorf("modbus.xml lacks %q:\n%s", want, x)
		}
	}
	t.Logf("%d requests", p.Sent())
	// Holding register 305 moved between the two reads: a processlist engine, the others as read.
	if len(p.Template.engines) != 1 || p.Template.engines[0].Field != "unit 255 HOLDING_REGISTERS wire address 305" {
		t.Errorf("engines %+v, want one for holding register 305", p.Template.engines)
	}
	k := p.Template.keys[p.Template.keyIndex["modbus255HoldingRegisters300"]]
	if k.fn != "processlist" || !strings.HasPrefix(k.expr, "[[300, 0, 0, 86400, 0, 0], ") {
		t.Errorf("holding registers 300-339: %s %s", k.fn, k.expr)
	}
	writeAndCheck(t, p.Template)
}

// writeAndCheck writes the template, loads it as the sensor does and checks its elements.
func writeAndCheck(t *testing.T, tpl *Template) {
	t.Helper()
	dir := t.TempDir()
	if err := tpl.Write(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := profiles.LoadDir(dir); err != nil {
		t.Fatalf("the clone does not load: %v", err)
	}
	checkConpotElements(t, dir)
}

func TestModbusBudget(t *testing.T) {
	var fcs []byte
	var mu sync.Mutex
	addr := fakeServer(t, "127.38.30.1", fakeModbus(&mu, &fcs))
	p := testProbe(t, addr, 30)
	(modbusProber{}).Probe(context.Background(), p)
	mu.Lock()
	defer mu.Unlock()
	if p.Sent() > 30 || len(fcs) > 30 {
		t.Errorf("budget 30: %d requests counted, %d arrived", p.Sent(), len(fcs))
	}
}

// Hostile devices: every one ends in an error or an absent protocol within the timeouts,
// never a hang or a panic.
func TestHostileDevices(t *testing.T) {
	cases := map[string]func(net.Conn){
		"silent":  func(c net.Conn) { io.Copy(io.Discard, c) },
		"garbage": func(c net.Conn) { c.Read(make([]byte, 64)); c.Write([]byte("HTTP/1.0 400 Bad\r\n\r\n\x00\x01\x02")) },
		"close":   func(c net.Conn) {},
		"hugelen": func(c net.Conn) {
			b := make([]byte, 64)
			n, _ := c.Read(b)
			if n >= 4 {
				c.Write([]byte{b[0], b[1], 0, 0, 0xFF, 0xFF, 1, 3})
				c.Write([]byte{3, 0, 0xFF, 0xFF})
			}
			io.Copy(io.Discard, c)
		},
		"flood": func(c net.Conn) {
			go io.Copy(io.Discard, c)
			frame := append([]byte{3, 0, 0x20, 0x00, 2, 0xF0, 0x00}, make([]byte, 0x2000-7)...)
			for i := 0; i < 64; i++ {
				if _, err := c.Write(frame); err != nil {
					return
				}
			}
		},
	}
	for name, h := range cases {
		for _, pr := range []Prober{modbusProber{}, s7Prober{}, httpProber{}, ftpProber{}} {
			t.Run(name+"/"+pr.Name(), func(t *testing.T) {
				addr := fakeServer(t, "127.38.30.2", h)
				p := testProbe(t, addr, 200)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				err := pr.Probe(ctx, p)
				if ctx.Err() != nil {
					t.Fatal("the prober hung")
				}
				if err == nil && pr.Name() != "http" {
					t.Errorf("a hostile device was cloned:\n%s", p.Template.sections[pr.Name()].body)
				}
				if err != nil && !errors.Is(err, ErrAbsent) {
					t.Logf("%v", err)
				}
			})
		}
	}
}

// fakeS7 answers the CR for TSAP 0x0102 only, the setup, and an SZL whose answer claims
// more data units forever.
func fakeS7(c net.Conn) {
	read := func() []byte {
		h := make([]byte, 4)
		if _, err := io.ReadFull(c, h); err != nil {
			return nil
		}
		b := make([]byte, int(binary.BigEndian.Uint16(h[2:]))-4)
		if _, err := io.ReadFull(c, b); err != nil {
			return nil
		}
		return b
	}
	send := func(b []byte) { c.Write(append(binary.BigEndian.AppendUint16([]byte{3, 0}, uint16(4+len(b))), b...)) }
	cr := read()
	if len(cr) < 16 || cr[13] != 0x01 || cr[14] != 0x02 {
		return
	}
	send([]byte{6, 0xD0, 0, 1, 0, 2, 0})
	for {
		b := read()
		if len(b) < 13 {
			return
		}
		s7 := b[3:]
		switch s7[1] {
		case 1: // setup
			send(append([]byte{2, 0xF0, 0x80}, 0x32, 3, 0, 0, s7[4], s7[5], 0, 8, 0, 0, 0, 0, 0xF0, 0, 0, 1, 0, 1, 0, 240))
		case 7: // SZL: "more follows" on every answer
			param := []byte{0, 1, 0x12, 8, 0x12, 0x84, 1, 1, 7, 1, 0, 0}
			data := []byte{0xFF, 0x09, 0, 12, 0, 0x11, 0, 0, 0, 2, 0, 2, 0, 0x11, 0, 0x1C}
			send(append(append(append([]byte{2, 0xF0, 0x80}, 0x32, 7, 0, 0, s7[4], s7[5], 0, 12, 0, byte(len(data))), param...), data...))
		default:
			return
		}
	}
}

func TestS7Probe(t *testing.T) {
	addr := fakeServer(t, "127.38.30.3", fakeS7)
	p := testProbe(t, addr, 500)
	if err := (s7Prober{}).Probe(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(p.Report.Found, "\n"), "called TSAP 0102 accepted") {
		t.Errorf("found: %v", p.Report.Found)
	}
	if !strings.Contains(p.Template.sections["s7comm"].body, "<slot>2</slot>") {
		t.Errorf("s7comm.xml:\n%s", p.Template.sections["s7comm"].body)
	}
	// 6 TSAPs, reconnect, setup, then at most 16 fragments for each SZL read.
	if p.Sent() > 8+16*(1+len(s7SZLs)) {
		t.Errorf("%d requests: the endless SZL was not cut off", p.Sent())
	}
	writeAndCheck(t, p.Template)
}

func TestFTPProbe(t *testing.T) {
	var got []string
	var mu sync.Mutex
	addr := fakeServer(t, "127.38.30.4", func(c net.Conn) {
		c.Write([]byte("220-Welcome\r\n220 VxWorks (5.4.2) FTP server ready\r\n"))
		buf := make([]byte, 256)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			cmd := strings.TrimSpace(string(buf[:n]))
			mu.Lock()
			got = append(got, cmd)
			mu.Unlock()
			switch cmd {
			case "SYST":
				c.Write([]byte("215 VxWorks\r\n"))
			case "FEAT":
				c.Write([]byte("211-Features:\r\n SIZE\r\n211 End\r\n"))
			default:
				c.Write([]byte("221 Bye\r\n"))
				return
			}
		}
	})
	p := testProbe(t, addr, 100)
	if err := (ftpProber{}).Probe(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range got {
		if !ftpCommands[c] {
			t.Errorf("the prober sent %q", c)
		}
	}
	x := p.Template.sections["ftp"].body
	if !strings.Contains(x, "<banner>Welcome VxWorks (5.4.2) FTP server ready</banner>") || !strings.Contains(x, "<syst>VxWorks</syst>") {
		t.Errorf("ftp.xml:\n%s", x)
	}
	writeAndCheck(t, p.Template)
}
