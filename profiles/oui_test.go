package profiles

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOUITableIsGenerated(t *testing.T) {
	f, err := os.Open("/usr/share/ieee-data/oui.csv")
	if err != nil {
		if strings.EqualFold(os.Getenv("CI"), "true") {
			t.Fatal("ieee-data not installed (make deps):", err)
		}
		t.Skip("ieee-data not installed:", err)
	}
	f.Close()
	// The table must name every vendor with at least one assignment, each a universally
	// administered unicast OUI.
	for _, v := range Vendors() {
		ouis, _ := VendorOUIs(v)
		if bs, _ := VendorBlocks(v); len(bs) == 0 {
			t.Errorf("vendor %s: no assignment", v)
		}
		for _, o := range ouis {
			if o[0]&3 != 0 {
				t.Errorf("vendor %s: OUI %s is multicast or local", v, o)
			}
		}
	}
	s, _ := VendorOUIs("siemens")
	if !slices.Contains(s, OUI{0x00, 0x1b, 0x1b}) {
		t.Errorf("siemens OUIs %v lack 00:1B:1B (Siemens AG, I IA, Karlsruhe)", s)
	}
	// Distech Controls holds only an MA-M block (mam.csv: MA-M,38F7CDA,Distech Controls).
	d, ok := VendorBlocks("distech")
	if want := (MACBlock{[6]byte{0x38, 0xf7, 0xcd, 0xa0}, 28}); !ok || !slices.Contains(d, want) {
		t.Errorf("distech blocks %v lack %v", d, want)
	}
	if o, _ := VendorOUIs("distech"); len(o) != 0 {
		t.Errorf("distech MA-L %v", o)
	}
	for _, v := range Vendors() {
		bs, _ := VendorBlocks(v)
		for _, b := range bs {
			if b.check(b.String()) != nil || (b.Bits != 24 && b.Bits != 28 && b.Bits != 36) {
				t.Errorf("vendor %s: bad block %v", v, b)
			}
		}
	}
}

// TestHostMACInBlocks: MACs drawn in MA-M and MA-S blocks keep the block's bits and vary
// in all the others; for an MA-L block HostMACIn is HostMAC.
func TestHostMACInBlocks(t *testing.T) {
	mam := MACBlock{[6]byte{0x38, 0xf7, 0xcd, 0xa0}, 28}
	mas := MACBlock{[6]byte{0x70, 0xb3, 0xd5, 0xf2, 0xf0}, 36}
	siemens, _ := VendorOUIs("siemens")
	var orM, orS byte
	seen := map[string]bool{}
	for seed := range uint64(1000) {
		s := seed * 0x9e3779b97f4a7c15
		m := HostMACIn(s, []MACBlock{mam})
		if !mam.Contains(m) || m[0]&3 != 0 {
			t.Fatalf("seed %d: %s outside %s", seed, m, mam)
		}
		orM |= m[3] & 0x0f
		seen[m.String()] = true
		n := HostMACIn(s, []MACBlock{mas})
		if !mas.Contains(n) {
			t.Fatalf("seed %d: %s outside %s", seed, n, mas)
		}
		orS |= n[4] & 0x0f
		if !bytes.Equal(HostMAC(s, siemens), HostMACIn(s, Blocks(siemens))) {
			t.Fatalf("seed %d: HostMAC and HostMACIn differ", seed)
		}
	}
	if orM != 0x0f || orS != 0x0f || len(seen) < 990 {
		t.Fatalf("free bits not drawn: %x %x, %d distinct", orM, orS, len(seen))
	}
}

func TestParseMACBlock(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"00:1B:1B", "00:1B:1B", true},
		{"38:F7:CD:A0:00:00/28", "38:F7:CD:A0:00:00/28", true},
		{"38f7cda", "38:F7:CD:A0:00:00/28", true},
		{"70B3D5F2F", "70:B3:D5:F2:F0:00/36", true},
		{"38:F7:CD:A1:00:00/28", "", false}, // bits below the prefix
		{"39:F7:CD:A0:00:00/28", "", false}, // multicast
		{"38:F7:CD:A0:00:00/30", "", false},
		{"38f7cdg", "", false},
		{"38:F7:CD/28", "", false},
	} {
		b, err := ParseMACBlock(tt.in)
		if (err == nil) != tt.ok || (tt.ok && b.String() != tt.want) {
			t.Errorf("ParseMACBlock(%q) = %v, %v", tt.in, b, err)
		}
	}
	if _, err := ouisParam([]any{"distech"}); err != nil {
		t.Error(err)
	}
	bs, err := ouisParam([]any{"38:F7:CD:A0:00:00/28", "siemens"})
	if err != nil || len(bs) < 2 || bs[0].Bits != 28 {
		t.Errorf("ouisParam: %v %v", bs, err)
	}
}

func TestHostMAC(t *testing.T) {
	ouis, _ := VendorOUIs("siemens")
	seen := map[string]bool{}
	usedOUI := map[OUI]bool{}
	for seed := range uint64(2000) {
		m := HostMAC(seed*0x9e3779b97f4a7c15, ouis)
		if len(m) != 6 || m[0]&1 != 0 {
			t.Fatalf("seed %d: MAC %s not unicast", seed, m)
		}
		if !slices.Contains(ouis, OUI(m[:3])) {
			t.Fatalf("seed %d: MAC %s not a Siemens OUI", seed, m)
		}
		if !bytes.Equal(m, HostMAC(seed*0x9e3779b97f4a7c15, ouis)) {
			t.Fatal("not deterministic")
		}
		seen[m.String()] = true
		usedOUI[OUI(m[:3])] = true
	}
	if len(seen) < 1990 || len(usedOUI) != len(ouis) {
		t.Fatalf("%d distinct MACs of 2000, %d of %d OUIs used", len(seen), len(usedOUI), len(ouis))
	}
	// A fixed vector: the kernel programs (bpf/kident.c) are tested against HostMAC.
	if got := HostMAC(1, []OUI{{0x00, 0x1b, 0x1b}}).String(); got != "00:1b:1b:"+got[9:] || len(got) != 17 {
		t.Fatalf("HostMAC(1) = %s", got)
	}
}

func TestParseOUI(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{{"00:1B:1B", true}, {"0c-c4-7a", true}, {"0CC47A", true}, {"01:00:5e", false}, {"02:00:00", false}, {"00:1B", false}, {"zz:zz:zz", false}} {
		_, err := ParseOUI(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseOUI(%q): %v", tt.in, err)
		}
	}
}

// TestMACFromDatabus: the embedded profiles' MacAddress is HostMAC of the host seed, so
// every protocol that reads the key shows the MAC the kernel answers ARP with.
func TestMACFromDatabus(t *testing.T) {
	for _, tt := range []struct{ profile, vendor string }{{"default", "siemens"}, {"bmc", ""}} {
		p, err := Open(tt.profile)
		if err != nil {
			t.Fatal(err)
		}
		key, ouis, ok, err := p.MACOUIs()
		if err != nil || !ok || key != "MacAddress" {
			t.Fatalf("%s: MACOUIs = %q %v %v %v", tt.profile, key, ouis, ok, err)
		}
		if tt.vendor != "" {
			want, _ := VendorBlocks(tt.vendor)
			if !slices.Equal(ouis, want) {
				t.Fatalf("%s: OUIs %v, want %v", tt.profile, ouis, want)
			}
		}
		for _, seed := range []uint64{1, 42, 0xdeadbeefcafe} {
			db := p.Schema.NewDatabus(EngineEnv{Seed: seed, Addr: netip.MustParseAddr("198.18.37.5"), Start: time.Now()})
			v, err := db.GetString("MacAddress")
			if err != nil {
				t.Fatal(err)
			}
			m, err := net.ParseMAC(v)
			if err != nil || !bytes.Equal(m, HostMACIn(seed, ouis)) {
				t.Fatalf("%s seed %d: databus MAC %q, HostMAC %s", tt.profile, seed, v, HostMACIn(seed, ouis))
			}
		}
	}
}

func TestMACFunctionErrors(t *testing.T) {
	for _, params := range [][]any{nil, {"nosuchvendor"}, {int64(3)}, {"01:00:5e"}} {
		if _, err := ouisParam(params); err == nil {
			t.Errorf("params %v accepted", params)
		}
	}
}

func TestPersonalities(t *testing.T) {
	for _, p := range Personalities() {
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
	}
	for _, tt := range []struct{ profile, want string }{{"default", "siemens-s7-300"}, {"bmc", "supermicro-bmc"}} {
		p, err := Open(tt.profile)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := p.Personality()
		if !ok || got.Name != tt.want {
			t.Errorf("%s: personality %q %v, want %s", tt.profile, got.Name, ok, tt.want)
		}
	}
	bmc, _ := LookupPersonality("supermicro-bmc")
	if bmc.WScale() != 2 || !bmc.HasOption('T') || !bmc.HasOption('S') {
		t.Errorf("bmc options: wscale %d", bmc.WScale())
	}
	s7, _ := LookupPersonality("siemens-s7-300")
	if s7.WScale() != -1 || s7.HasOption('T') || s7.TTL != 0x78 || s7.TTLOpen != 0x5a || s7.Window != 0x800 || s7.DF {
		t.Errorf("s7: %+v", s7)
	}
	bad := s7
	bad.Options = "MX"
	if bad.Validate() == nil {
		t.Error("options MX accepted")
	}
}

// FuzzParseMACBlock: any string either fails or gives a valid block whose String parses
// back to the same block, and whose drawn MACs stay inside it.
func FuzzParseMACBlock(f *testing.F) {
	for _, s := range []string{"00:1B:1B", "38:F7:CD:A0:00:00/28", "38f7cda", "70B3D5F2F", "38:F7:CD:A1:00:00/28", "x/28", "//", "00-1b-1b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseMACBlock(s)
		if err != nil {
			return
		}
		if b.check(s) != nil || (b.Bits != 24 && b.Bits != 28 && b.Bits != 36) {
			t.Fatalf("%q: invalid block %+v", s, b)
		}
		back, err := ParseMACBlock(b.String())
		if err != nil || back != b {
			t.Fatalf("%q: %v does not round-trip: %v %v", s, b, back, err)
		}
		if m := HostMACIn(uint64(len(s))*0x9e3779b97f4a7c15, []MACBlock{b}); !b.Contains(m) || m[0]&3 != 0 {
			t.Fatalf("%q: MAC %s outside %v", s, m, b)
		}
	})
}
