package sensor

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"
)

// TestXDPRulesConfig reads [[xdp.rules]] from TOML: valid rules load, invalid ones are
// errors naming the rule and the problem.
func TestXDPRulesConfig(t *testing.T) {
	const head = "[[hosts]]\naddresses = [\"198.18.20.1\"]\nprofile = \"default\"\n"
	cases := []struct {
		name, toml, err string
	}{
		{"ok", `
[[xdp.rules]]
protocol = "snmp"
class = "who-is"
match = ["0:810b 4:01 5:00/f8 6:1008", "0:810b 4:01 5:20/f8 6:ffff 8:00 10:1008"]
per_source_per_minute = 60
global_per_minute = 600
[[xdp.rules]]
port = 69
class = "read"
match = ["0:0001"]
per_source_per_minute = 10
burst = 3
reserve = -1
[[xdp.rules]]
port = 161
class = "get"
per_source_per_minute = 5
`, ""},
		{"port and protocol", "[[xdp.rules]]\nport = 69\nprotocol = \"tftp\"\n", "xdp.rules[0]: give either port or protocol"},
		{"neither", "[[xdp.rules]]\nclass = \"x\"\n", "give either port or protocol"},
		{"port range", "[[xdp.rules]]\nport = 70000\n", "port 70000 out of range"},
		{"bad hex", "[[xdp.rules]]\nport = 69\nclass = \"r\"\nmatch = [\"0:0g\"]\n", `xdp.rules[0]: byte match "0:0g": bad hex value`},
		{"mask length", "[[xdp.rules]]\nport = 69\nclass = \"r\"\nmatch = [\"0:0001/ff\"]\n", "mask has 1 bytes, value 2"},
		{"class without match", "[[xdp.rules]]\nport = 69\nclass = \"read\"\n", `class "read" has no match and is not a built-in SNMP class`},
		{"match without class", "[[xdp.rules]]\nport = 69\nmatch = [\"0:01\"]\n", "the default class has no match"},
		{"class name", "[[xdp.rules]]\nport = 69\nclass = \"Read Me\"\nmatch = [\"0:01\"]\n", "want lower-case letters"},
		{"negative", "[[xdp.rules]]\nport = 69\nper_source_per_minute = -1\n", "negative rate"},
		{"reserve", "[[xdp.rules]]\nport = 69\nglobal_per_minute = 10\nreserve = 10\n", "reserve 10 must be below the global burst 10"},
		{"unknown key", "[[xdp.rules]]\nport = 69\nmask = \"ff\"\n", "unknown keys: xdp.rules.mask"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(head+tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

// TestRateLimitPlan: the order classes are tried in ([[xdp.rules]], then profiles, then
// the [xdp] defaults), duplicates, bound ports, and what check reports.
func TestRateLimitPlan(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hosts = []HostRule{{Addresses: []string{"198.18.20.0/24"}, Profile: evasionProfile(t)}}
	cfg.Bind.PortOffset = 10000
	cfg.XDP.PerSourcePerMinute = 100
	cfg.XDP.Rules = []XDPRule{
		{Protocol: "snmp", Class: "get", PerSourcePerMinute: 7}, // overrides the profile's get
		{Protocol: "snmp", Class: "v3", Match: []string{"2:020103/ffffff"}, GlobalPerMinute: 50},
		{Port: 69, Class: "read", Match: []string{"0:0001"}, PerSourcePerMinute: 1},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	devs, _, err := LoadProfiles(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines, warnings, err := RateLimitPlan(cfg, devs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"rate limit udp/10161 class get: per source 7/min, overall unlimited",
		"rate limit udp/10161 class v3: per source unlimited, overall 50/min if 2:020103/ffffff",
		"rate limit udp/69 class read: per source 1/min, overall unlimited if 0:0001",
		"rate limit udp/10161 class (default): per source 100/min, overall unlimited",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `rate limit of snmp for udp/10161 class "get" ignored`) {
		t.Errorf("warnings %q", warnings)
	}

	// The userspace limiter classifies as the kernel: an SNMP GET is in the profile's
	// "get" class, which the agent counts itself, and not in the port's default class.
	cfg.XDP.Rules = nil
	_, lim, _, err := planLimits(cfg, devs)
	if err != nil {
		t.Fatal(err)
	}
	get, err := (&gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetRequest,
		Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.Null}}}).MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("198.18.20.9")
	for i := 0; i < 150; i++ {
		if d := lim.Allow(10161, src, get); !d.Allowed() || d.Class != "get" {
			t.Fatalf("GET %d: %+v, want allowed in class get", i, d)
		}
	}
	passed := 0
	for i := 0; i < 150; i++ {
		if lim.Allow(10161, src, []byte("not snmp")).Allowed() {
			passed++
		}
	}
	if passed != 100 {
		t.Errorf("default class passed %d of 150, want the [xdp] default of 100", passed)
	}

	// Two profiles limiting the same port and class: the kernel has the first one's
	// limit; each agent keeps its own in userspace.
	cfg.Hosts = append(cfg.Hosts, HostRule{Addresses: []string{"198.18.21.0/24"}, Profile: evasionProfile(t)})
	cfg.XDP.PerSourcePerMinute = 0
	devs2, _, err := LoadProfiles(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rules, _, warnings, err := planLimits(cfg, devs2)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, lr := range rules {
		kinds = append(kinds, fmt.Sprintf("%s shadowed=%v dup=%v", lr.rule.Class, lr.shadowed, lr.dup))
	}
	if got := strings.Join(kinds, "; "); got != "get shadowed=false dup=false; get shadowed=false dup=true" || len(warnings) != 1 {
		t.Errorf("two profiles: %s; warnings %q", got, warnings)
	}

	cfg.XDP.Rules = []XDPRule{{Protocol: "bacnet", GlobalPerMinute: 5}}
	if _, _, err := RateLimitPlan(cfg, devs); err == nil || !strings.Contains(err.Error(), `xdp.rules[0]: protocol "bacnet" serves no UDP port`) {
		t.Errorf("unknown protocol: %v", err)
	}
}
