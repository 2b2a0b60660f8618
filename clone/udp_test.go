package clone

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeUDP answers datagrams on host:0 with handle (nil answers send nothing).
func fakeUDP(t *testing.T, host string, handle func(req []byte) [][]byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, a := range handle(append([]byte(nil), buf[:n]...)) {
				pc.WriteTo(a, from)
			}
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// BACnet application values for the fake device.
func appChars(s string) []byte { return append([]byte{0x75, byte(len(s) + 1), 0}, s...) }

func appUnsigned(v uint32) []byte {
	if v < 256 {
		return []byte{0x21, byte(v)}
	}
	return binary.BigEndian.AppendUint16([]byte{0x22}, uint16(v))
}

func appReal(f float32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0x44}, math.Float32bits(f))
}

func appObject(typ uint16, inst uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0xC4}, uint32(typ)<<22|inst)
}

// fakeBACnet is a small BACnet device that rejects ReadPropertyMultiple and aborts a
// whole object-list read, so the prober falls back to ReadProperty and to the list entry
// by entry. It records the services asked.
func fakeBACnet(mu *sync.Mutex, services *[]byte, iam bool) func([]byte) [][]byte {
	const inst = 4711
	props := map[[2]uint32][]byte{
		{8, bacPropObjectName}:          appChars("plant-ahu-07"),
		{8, bacPropObjectIdentifier}:    appObject(8, inst),
		{8, bacPropVendorName}:          appChars("Fake Controls"),
		{8, bacPropVendorIdentifier}:    appUnsigned(999),
		{8, bacPropModelName}:           appChars("FK-200"),
		{8, bacPropFirmwareRevision}:    appChars("1.0.3"),
		{8, bacPropSerialNumber}:        appChars("SN 12345678"),
		{8, bacPropSegmentation}:        {0x91, 3},
		{8, bacPropLocation}:            appChars("\"quoted\""),
		{0, bacPropObjectName}:          appChars("AI-1"),
		{0, bacPropUnits}:               {0x91, 62},
		{19, bacPropObjectName}:         appChars("MODE"),
		{19, bacPropPresentValue}:       appUnsigned(2),
		{19, bacPropNumberOfStates}:     appUnsigned(2),
		{19, bacPropStateText}:          append(appChars("On"), appChars("Off")...),
		{8, bacPropProtocolServices}:    {0x85, 0x06, 0x07, 0x00, 0x0B, 0x00, 0x00, 0x00},
		{8, bacPropProtocolObjectTypes}: {0x83, 0x04, 0xFF, 0xFF},
	}
	objects := [][]byte{appObject(8, inst), appObject(0, 1), appObject(19, 1)}
	pvReads := 0
	return func(req []byte) [][]byte {
		apdu, err := bacUnwrap(req)
		if err != nil {
			return nil
		}
		wrap := func(a []byte) [][]byte { return [][]byte{bacWrap(a, false)} }
		if apdu[0] == 0x10 && apdu[1] == 0x08 && iam {
			return wrap(append(append([]byte{0x10, 0x00}, appObject(8, inst)...), 0x22, 0x05, 0xC4, 0x91, 0x03, 0x22, 0x03, 0xE7))
		}
		if apdu[0]>>4 != 0 || len(apdu) < 4 {
			return nil
		}
		inv, svc := apdu[2], apdu[3]
		mu.Lock()
		*services = append(*services, svc)
		mu.Unlock()
		if svc != bacServiceReadProperty {
			return wrap([]byte{0x60, inv, 9}) // reject: unrecognized service
		}
		body := apdu[4:]
		objT := binary.BigEndian.Uint32(body[1:]) >> 22
		pt, err := readTag(body[5:])
		if err != nil {
			return nil
		}
		pv, _ := beUint(pt.content(body[5:]))
		prop := uint32(pv)
		idx := -1
		if rest := body[5+pt.size():]; len(rest) > 1 {
			idx = int(rest[1])
		}
		ack := append([]byte{0x30, inv, bacServiceReadProperty}, body...)
		ack = append(ack, 0x3E)
		switch {
		case prop == bacPropObjectList && idx < 0:
			return wrap([]byte{0x70, inv, 4}) // abort: segmentation not supported
		case prop == bacPropObjectList && idx == 0:
			ack = append(ack, appUnsigned(uint32(len(objects)))...)
		case prop == bacPropObjectList && idx <= len(objects):
			ack = append(ack, objects[idx-1]...)
		case objT == 0 && prop == bacPropPresentValue: // a live temperature
			pvReads++
			ack = append(ack, appReal(21+0.5*float32(pvReads))...)
		default:
			v, ok := props[[2]uint32{objT, prop}]
			if !ok {
				return wrap([]byte{0x50, inv, bacServiceReadProperty, 0x91, 2, 0x91, 32})
			}
			ack = append(ack, v...)
		}
		return wrap(append(ack, 0x3F))
	}
}

// A device that broadcasts its I-Am (no unicast answer to Who-Is) is found by the
// object-identifier of the wildcard device.
func TestBACnetProbeWithoutIAm(t *testing.T) {
	var mu sync.Mutex
	var services []byte
	addr := fakeUDP(t, "127.73.30.1", fakeBACnet(&mu, &services, false))
	p := testProbe(t, addr, 4000)
	if err := (bacnetProber{}).Probe(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if f := strings.Join(p.Report.Found, "\n"); !strings.Contains(f, "device 4711 (object-identifier of the wildcard device") {
		t.Errorf("found %s", f)
	}
	if s := p.Template.seeded; len(s) == 0 || s[0].Original != "4711" {
		t.Errorf("seeded %+v", s)
	}
}

func TestBACnetProbe(t *testing.T) {
	var mu sync.Mutex
	var services []byte
	addr := fakeUDP(t, "127.73.30.1", fakeBACnet(&mu, &services, true))
	p := testProbe(t, addr, 4000)
	if err := (bacnetProber{}).Probe(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, s := range services {
		if s != bacServiceReadProperty && s != bacServiceReadPropMultiple {
			t.Errorf("the prober sent confirmed service %d", s)
		}
	}
	mu.Unlock()
	x := p.Template.sections["bacnet"].body
	for _, want := range []string{`<device_identifier databus="Number_bacnet"/>`, `<object_name databus="HostName"/>`,
		"<vendor_name>Fake Controls</vendor_name>", "<vendor_identifier>999</vendor_identifier>",
		"<segmentation_supported>noSegmentation</segmentation_supported>", `<serial_number databus="SerialNumber"/>`,
		`<location databus="bacnet_location"/>`, `<object name="AI-1">`, `<present_value databus="bacnet_analogInput_1"/>`, "<units>62</units>",
		"<object_type>multiStateValue</object_type>", "<state_text>On;Off</state_text>"} {
		if !strings.Contains(x, want) {
			t.Errorf("bacnet.xml lacks %q:\n%s", want, x)
		}
	}
	if e := p.Template.engines; len(e) != 1 || e[0].Field != "analogInput,1 present_value" || e[0].Observed != "21.5 then 22 in 0.1s" {
		t.Errorf("engines %+v", e)
	}
	if k := p.Template.keys[p.Template.keyIndex["bacnet_analogInput_1"]]; k.fn != "process" || k.expr != "[21.75, 0.5, 1, 3600, 0.25, 1]" {
		t.Errorf("the present value's engine: %s %s", k.fn, k.expr)
	}
	if !strings.Contains(strings.Join(p.Report.Notes, "\n"), "ReadPropertyMultiple refused") {
		t.Errorf("no note of the RPM fallback: %v", p.Report.Notes)
	}
	if !strings.Contains(strings.Join(p.Report.Found, "\n"), "read entry by entry") {
		t.Errorf("the object list was not read entry by entry: %v", p.Report.Found)
	}
	writeAndCheck(t, p.Template)
}

// Hostile UDP devices: silence, garbage, an answer to every datagram echoed back, a flood
// of stray datagrams, a BVLC that lies about its length. Every prober ends with an error
// or an absent protocol within its timeouts, never a hang, a panic or a clone.
func TestHostileUDPDevices(t *testing.T) {
	cases := map[string]func([]byte) [][]byte{
		"silent":  func([]byte) [][]byte { return nil },
		"garbage": func([]byte) [][]byte { return [][]byte{{0x81, 0x0A, 0x00}, []byte("HTTP/1.0 400 Bad\r\n\r\n")} },
		"echo":    func(req []byte) [][]byte { return [][]byte{req} },
		"flood": func([]byte) [][]byte {
			out := make([][]byte, 64)
			for i := range out {
				out[i] = append([]byte{0x81, 0x0A, 0x05, 0xDC, 0x01, 0x00, 0x30, byte(i)}, make([]byte, 1492)...)
			}
			return out
		},
		"liar": func(req []byte) [][]byte {
			return [][]byte{{0x81, 0x0A, 0xFF, 0xFF, 0x01, 0x00, 0x10, 0x00, 0xC4}, {0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0x81}}
		},
	}
	for name, h := range cases {
		for _, pr := range []Prober{bacnetProber{}, ipmiProber{}, enipProber{}} {
			t.Run(name+"/"+pr.Name(), func(t *testing.T) {
				addr := fakeUDP(t, "127.73.30.2", h)
				p := testProbe(t, addr, 200)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				err := pr.Probe(ctx, p)
				if ctx.Err() != nil {
					t.Fatal("the prober hung")
				}
				if err == nil {
					t.Errorf("a hostile device was cloned:\n%s", p.Template.sections[pr.Name()].body)
				}
				if err != nil && !errors.Is(err, ErrAbsent) {
					t.Logf("%v", err)
				}
				if p.Sent() > 20 {
					t.Errorf("%d requests to a device that answers nothing useful", p.Sent())
				}
			})
		}
	}
}

// fakeEnipIdentity is the ListIdentity item of a fake controller.
func fakeEnipIdentity(addr netip.AddrPort) []byte {
	d := []byte{1, 0, 0, 2}
	d = binary.BigEndian.AppendUint16(d, addr.Port())
	a := addr.Addr().As4()
	d = append(d, a[:]...)
	d = append(d, make([]byte, 8)...)
	d = binary.LittleEndian.AppendUint16(d, 1)  // vendor
	d = binary.LittleEndian.AppendUint16(d, 14) // device type
	d = binary.LittleEndian.AppendUint16(d, 55) // product code
	d = append(d, 20, 11)
	d = binary.LittleEndian.AppendUint16(d, 0x3060)
	d = binary.LittleEndian.AppendUint32(d, 0x6C061A)
	name := "1756-L61/B LOGIX5561"
	d = append(append(d, byte(len(name))), name...)
	return append(d, 3)
}

func enipReply(req, items []byte, count int) []byte {
	out := append([]byte(nil), req[:24]...)
	body := binary.LittleEndian.AppendUint16(nil, uint16(count))
	body = append(body, items...)
	binary.LittleEndian.PutUint16(out[2:], uint16(len(body)))
	return append(out, body...)
}

func TestEnipProbeUDPOnly(t *testing.T) {
	var mu sync.Mutex
	var cmds []uint16
	// The device names itself by another address (behind NAT): the report notes it.
	self := netip.MustParseAddrPort("192.0.2.7:44818")
	addr := fakeUDP(t, "127.73.30.3", func(req []byte) [][]byte {
		if len(req) < 24 {
			return nil
		}
		cmd := binary.LittleEndian.Uint16(req)
		mu.Lock()
		cmds = append(cmds, cmd)
		mu.Unlock()
		switch cmd {
		case enipListIdentity:
			id := fakeEnipIdentity(self)
			item := binary.LittleEndian.AppendUint16([]byte{0x0C, 0}, uint16(len(id)))
			return [][]byte{enipReply(req, append(item, id...), 1)}
		case enipListServices:
			svc := append([]byte{0, 1, 20, 0, 1, 0, 0x20, 0x01}, "Communications\x00\x00"...)
			return [][]byte{enipReply(req, svc, 1)}
		case enipListInterfaces:
			return [][]byte{enipReply(req, nil, 0)}
		}
		return nil
	})
	p := testProbe(t, addr, 100)
	if err := (enipProber{}).Probe(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, c := range cmds {
		if _, ok := enipCommands[c]; !ok {
			t.Errorf("the prober sent command %#04x", c)
		}
	}
	mu.Unlock()
	x := p.Template.sections["enip"].body
	for _, want := range []string{"<VendorId>1</VendorId>", "<ProductName>1756-L61/B LOGIX5561</ProductName>", "<ProductRevision>20.11</ProductRevision>",
		"<ProductCode>55</ProductCode>", "<Status>0x3060</Status>", "<State>3</State>", `<SerialNumber databus="Number_enip"/>`} {
		if !strings.Contains(x, want) {
			t.Errorf("enip.xml lacks %q:\n%s", want, x)
		}
	}
	if s := p.Template.seeded; len(s) != 1 || s[0].Original != "0x006c061a" || s[0].Expression != "random.randint(0, 268435455)" {
		t.Errorf("seeded %+v", s)
	}
	if n := strings.Join(p.Report.Notes, "\n"); !strings.Contains(n, "tcp: ListIdentity unanswered") || !strings.Contains(n, "names itself 192.0.2.7:44818") {
		t.Errorf("notes %v", p.Report.Notes)
	}
	writeAndCheck(t, p.Template)
}

func TestEnipRequestRefusesOtherCommands(t *testing.T) {
	for _, cmd := range []uint16{0x0065, 0x006F, 0x0070, 0x0066, 0} {
		if _, err := enipRequest(cmd, 1); err == nil {
			t.Errorf("command %#04x was built", cmd)
		}
	}
	for _, cmd := range []byte{0x02, 0x3A, 0x3B, 0x45, 0x47, 0x52} { // reset, sessions, users, passwords, master write-read
		if _, err := ipmiRequest(cmd, 1, nil); err == nil {
			t.Errorf("IPMI command %#02x was built", cmd)
		}
	}
}

func TestParseBlocksOfType(t *testing.T) {
	d := []byte{0, 1, 0x22, 1, 0, 1, 0x22, 1, 0, 0, 0x22, 1, 0, 35, 0x22, 2, 0xFF}
	got := parseBlocksOfType(0x38, d)
	if len(got) != 2 || got[0].number != 1 || got[1].number != 35 || got[1].lang != 2 {
		t.Errorf("OBs %+v: want 1 and 35 (0 and the duplicate left out)", got)
	}
	if got := parseBlocksOfType(0x44, d); len(got) != 3 || got[1].number != 0 {
		t.Errorf("SFCs %+v: want 1, 0 and 35", got)
	}
}

// fakeBMC answers like a BMC that tells its device ID outside a session, lists suites the
// sensor lacks and answers every cipher suite page with a full page (the prober stops at
// its bound).
func fakeBMC(t *testing.T, cmds *[]byte, mu *sync.Mutex) netip.AddrPort {
	return fakeUDP(t, "127.73.30.4", func(req []byte) [][]byte {
		if len(req) >= 12 && req[3] == 0x06 { // ASF ping
			pong := []byte{0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x40, req[9], 0x00, 0x10, 0, 0, 0x11, 0xBE, 0, 0, 0, 0, 0x81, 0, 0, 0, 0, 0, 0, 0}
			return [][]byte{pong}
		}
		if len(req) < 21 || req[3] != 0x07 {
			return nil
		}
		msg := req[14:]
		cmd, seq := msg[5], msg[4]>>2
		mu.Lock()
		*cmds = append(*cmds, cmd)
		mu.Unlock()
		var data []byte
		switch cmd {
		case ipmiGetAuthCaps:
			data = []byte{0x00, 0x01, 0x80 | 0x10 | 0x04, 0x04, 0x03, 0, 0, 0, 0}
		case ipmiGetDeviceID:
			data = []byte{0x00, 0x20, 0x01, 0x03, 0x45, 0x02, 0xBF, 0x57, 0x01, 0x00, 0x34, 0x12}
		case ipmiGetSystemGUID:
			data = append([]byte{0x00}, make([]byte, 16)...)
		case ipmiGetCipherSuites:
			// a stream of records longer than the prober reads, 16 bytes a page
			var stream []byte
			for len(stream) < 16*(ipmiMaxCipherPages+2) {
				stream = append(stream, 0xC0, 3, 0x01, 0x41, 0x81, 0xC0, 11, 0x03, 0x44, 0x81, 0xC0, 17, 0x03, 0x44, 0x81)
			}
			page := int(msg[8] & 0x3F)
			data = append([]byte{0x00, 0x01}, stream[16*page:16*page+16]...)
		default:
			data = []byte{0xC1}
		}
		r := []byte{0x81, 0x1C, 0, 0x20, seq << 2, cmd}
		r[2] = ipmiChecksum(r[:2])
		r = append(r, data...)
		r = append(r, ipmiChecksum(r[3:]))
		return [][]byte{append([]byte{0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(r))}, r...)}
	})
}

func TestIPMIProbe(t *testing.T) {
	var mu sync.Mutex
	var cmds []byte
	p := testProbe(t, fakeBMC(t, &cmds, &mu), 100)
	if err := (ipmiProber{}).Probe(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, c := range cmds {
		if _, ok := ipmiCommands[c]; !ok {
			t.Errorf("the prober sent command %#02x", c)
		}
	}
	mu.Unlock()
	x := p.Template.sections["ipmi"].body
	for _, want := range []string{"<manufacturer_id>343</manufacturer_id>", "<product_id>0x1234</product_id>", "<device_id>0x20</device_id>",
		"<device_revision>1</device_revision>", "<firmware>3.45</firmware>", "<cipher_suites>3,17</cipher_suites>", "<auth_types>md5,password</auth_types>"} {
		if !strings.Contains(x, want) {
			t.Errorf("ipmi.xml lacks %q:\n%s", want, x)
		}
	}
	if s := strings.Join(p.Report.Skipped, "\n"); !strings.Contains(s, "cipher suites [11]: the sensor does not implement them") {
		t.Errorf("the unsupported suite 11 is not reported: %s", s)
	}
	if p.Sent() > 1+2+1+1+ipmiMaxCipherPages {
		t.Errorf("%d requests", p.Sent())
	}
	writeAndCheck(t, p.Template)
}
