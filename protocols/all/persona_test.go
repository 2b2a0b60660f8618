package all_test

import (
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/all"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// serveDefault serves one host of the default persona on loopback with the named
// protocols, each on a port the kernel picks.
func serveDefault(t *testing.T, names ...string) (*protocols.Host, map[string]netip.AddrPort) {
	t.Helper()
	p := protocoltest.Profile(t, profiles.DefaultName)
	h := protocoltest.Host(p, netip.MustParseAddr("127.0.0.1"), 0x5eed)
	addrs := map[string]netip.AddrPort{}
	for _, n := range names {
		proto, ok := protocols.Lookup(n)
		if !ok {
			t.Fatalf("no protocol %s", n)
		}
		svc := protocoltest.Configure(t, proto, p).(protocols.StreamService)
		addrs[n] = protocoltest.ServeTCP(t, n, svc, h, "127.0.0.1:0").Addr
	}
	return h, addrs
}

func s7Exchange(t *testing.T, c net.Conn, hexFrame string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(hexFrame, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, int(hdr[2])<<8|int(hdr[3])-4)
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatal(err)
	}
	return append(hdr, rest...)
}

func page(t *testing.T, addr netip.AddrPort, path string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestStopShowsEverywhere stops the default persona's CPU over S7 and checks that its web
// server shows STOP (issue 20: an S7 STOP showed in the SZL while HTTP still said RUN), and
// that a warm restart brings RUN back.
func TestStopShowsEverywhere(t *testing.T) {
	h, addrs := serveDefault(t, "s7comm", "http")
	if p := page(t, addrs["http"], "/Portal0000.htm"); !strings.Contains(p, `<span class="mode">RUN</span>`) {
		t.Fatalf("start page before STOP lacks RUN:\n%s", p)
	}
	c, err := net.Dial("tcp", addrs["s7comm"].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s7Exchange(t, c, "0300001611e00000000100c0010ac1020100c2020102")            // COTP CR, rack 0 slot 2
	s7Exchange(t, c, "0300001902f08032010000000100080000f0000001000101e0")      // setup communication
	r := s7Exchange(t, c, "0300002102f080320100000002001000002900000000000950"+ // PLC STOP
		hex.EncodeToString([]byte("_PROGRAM")))
	if len(r) < 19 || r[17] != 0 || r[18] != 0 {
		t.Fatalf("PLC STOP refused: % x", r)
	}
	if v, _ := h.Databus.GetString("OperatingMode"); v != "STOP" {
		t.Fatalf("databus OperatingMode %q after STOP", v)
	}
	if p := page(t, addrs["http"], "/Portal0000.htm"); !strings.Contains(p, `<span class="mode">STOP</span>`) {
		t.Fatalf("start page after STOP lacks STOP:\n%s", p)
	}
	// PI service P_PROGRAM: warm restart
	r = s7Exchange(t, c, "0300002502f0803201000000030014000028000000000000fd000009"+hex.EncodeToString([]byte("P_PROGRAM")))
	if len(r) < 19 || r[17] != 0 || r[18] != 0 {
		t.Fatalf("PLC start refused: % x", r)
	}
	if p := page(t, addrs["http"], "/Portal0000.htm"); !strings.Contains(p, `<span class="mode">RUN</span>`) {
		t.Fatalf("start page after restart lacks RUN:\n%s", p)
	}
}
