package main

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/bacnet"
	_ "github.com/icsnare/icsnare/protocols/enip"
	_ "github.com/icsnare/icsnare/protocols/http"
	_ "github.com/icsnare/icsnare/protocols/iec104"
	_ "github.com/icsnare/icsnare/protocols/ipmi"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	_ "github.com/icsnare/icsnare/protocols/s7comm"
)

// testAddr is a random address of 127.95.0.0/16, this command's test range.
func testAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 95, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// service configures a protocol from a testdata profile of its package, the way the sensor
// would (template warnings, such as the one on cpppo's serial, are not this test's concern).
func service(t *testing.T, name, dir string, addr netip.Addr) (protocols.Service, *protocols.Host) {
	t.Helper()
	proto, ok := protocols.Lookup(name)
	if !ok {
		t.Fatalf("protocol %s not registered", name)
	}
	p := protocoltest.Profile(t, dir)
	sec, ok := p.Sections[name]
	if !ok {
		t.Fatalf("%s has no %s section", dir, name)
	}
	var opts any
	if c, ok := proto.(protocols.Configurable); ok {
		opts = c.NewOptions()
	}
	svc, err := proto.Configure(sec, opts)
	if err != nil {
		t.Fatal(err)
	}
	return svc, protocoltest.Host(p, addr, 4242)
}

var linePat = regexp.MustCompile(`requests=(\d+) errors=(\d+)`)

// TestModesAgainstServices runs every new mode for a short bounded time (and a request
// budget) against its protocol's service on loopback and checks that requests succeeded
// and none failed.
func TestModesAgainstServices(t *testing.T) {
	cases := []struct {
		mode, proto, dir, transport string
		args                        []string
	}{
		{"enip-identity", "enip", "../../protocols/enip/testdata/default", "udp", nil},
		{"enip-identity", "enip", "../../protocols/enip/testdata/default", "tcp", []string{"-transport", "tcp", "-depth", "4"}},
		{"enip-readtag", "enip", "../../protocols/enip/testdata/default", "tcp", []string{"-tag", "SCADA", "-depth", "2"}},
		{"enip-readtag", "enip", "../../protocols/enip/testdata/logix", "tcp", []string{"-tag", "Level"}},
		{"iec104-gi", "IEC104", "../../protocols/iec104/testdata/IEC104", "tcp", nil},
		{"iec104-gi", "IEC104", "../../protocols/iec104/testdata/IEC104", "tcp", []string{"-ca", "7720"}},
		{"ipmi-session", "ipmi", "../../protocols/ipmi/testdata/bmc", "udp", nil},
		{"ipmi-chassis", "ipmi", "../../protocols/ipmi/testdata/bmc", "udp", []string{"-user", "User1", "-password", "U1Password"}},
		{"bacnet", "bacnet", "../../protocols/bacnet/testdata/controller", "udp", nil},
		{"bacnet", "bacnet", "../../protocols/bacnet/testdata/controller", "udp", []string{"-property", "70"}},
		{"s7comm", "s7comm", "../../profiles/templates/default", "tcp", nil},
		{"s7comm", "s7comm", "../../profiles/templates/default", "tcp", []string{"-quantity", "2"}},
		{"http", "http", "../../profiles/templates/default", "tcp", []string{"-path", "/index.html"}},
	}
	for _, c := range cases {
		t.Run(c.mode+"/"+c.transport+"/"+strings.Join(c.args, ""), func(t *testing.T) {
			a := testAddr()
			svc, h := service(t, c.proto, c.dir, a)
			addr := netip.AddrPortFrom(a, 0).String()
			var srv *protocoltest.Server
			if c.transport == "tcp" {
				srv = protocoltest.ServeTCP(t, c.proto, svc.(protocols.StreamService), h, addr)
			} else {
				srv = protocoltest.ServeUDP(t, c.proto, svc.(protocols.PacketService), h, addr)
			}
			args := append([]string{"-mode", c.mode, "-target", srv.Addr.String(), "-conns", "3",
				"-warmup", "0s", "-duration", "300ms", "-max-requests", "300"}, c.args...)
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			t.Logf("%s\n%s", out.String(), errb.String())
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			m := linePat.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatal("no result line")
			}
			ok, _ := strconv.Atoi(m[1])
			failed, _ := strconv.Atoi(m[2])
			if ok == 0 || failed != 0 {
				t.Fatalf("requests=%d errors=%d", ok, failed)
			}
			if srv.Panics.Load() != 0 {
				t.Fatal("handler panicked")
			}
		})
	}
}

func TestNewModeFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "enip-identity", "-transport", "sctp"},
		{"-mode", "enip-readtag", "-tag", ""},
		{"-mode", "iec104-gi", "-ca", "65536"},
		{"-mode", "ipmi-session", "-user", "a-user-name-longer-than-16"},
		{"-mode", "ipmi-session", "-password", "a-password-longer-than-20-octets"},
		{"-mode", "ipmi-chassis", "-target", "10.1.2.3:623"},
		{"-mode", "bacnet", "-property", "4194304"},
		{"-mode", "s7comm", "-quantity", "0"},
		{"-mode", "http", "-path", "index.html"},
		{"-mode", "http", "-path", "/a b"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}

// TestIECInterrogationComplete runs interrogations on one connection past the k and w
// windows (so the S-frames must keep the station sending) and checks each returns every
// monitored point of the profile: 59, as nmap's iec-identify counts them.
func TestIECInterrogationComplete(t *testing.T) {
	a := testAddr()
	svc, h := service(t, "IEC104", "../../protocols/iec104/testdata/IEC104", a)
	srv := protocoltest.ServeTCP(t, "IEC104", svc.(protocols.StreamService), h, netip.AddrPortFrom(a, 0).String())
	c, err := net.Dial("tcp", srv.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	ic := &iecConn{c: c, br: bufio.NewReader(c), buf: make([]byte, 260)}
	if _, err := c.Write(uFrame(iecStartDTAct)); err != nil {
		t.Fatal(err)
	}
	if f, err := ic.next(); err != nil || f.fn != iecStartDTCon {
		t.Fatalf("STARTDT: %+v %v", f, err)
	}
	for i := 0; i < 40; i++ {
		if err := ic.interrogate(0xFFFF); err != nil {
			t.Fatalf("interrogation %d: %v", i, err)
		}
		if ic.points != 59 {
			t.Fatalf("interrogation %d returned %d points, want 59", i, ic.points)
		}
	}
	if ic.frames < 40*3 {
		t.Fatalf("%d I-frames for 40 interrogations", ic.frames)
	}
	t.Logf("%d I-frames for 40 interrogations", ic.frames)
}
