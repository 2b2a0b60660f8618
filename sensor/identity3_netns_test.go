package sensor

import (
	"strings"
	"testing"
)

// TestIdentityNmapOSPersonas: nmap -O of the S7-1200, M340 and CompactLogix
// personalities in a veth namespace guesses each device's own vendor class.
func TestIdentityNmapOSPersonas(t *testing.T) {
	s, c := newKiPair(t)
	kiSensorWith(t, s, func(cfg *Config) {
		cfg.Hosts = []HostRule{{Addresses: []string{"198.18.37.0/26"}, Profile: "s7-1200"},
			{Addresses: []string{"198.18.37.64/26"}, Profile: "m340"},
			{Addresses: []string{"198.18.37.128/26"}, Profile: "compactlogix"}}
	})
	for _, tt := range []struct {
		name, addr, ports, want string
	}{
		{"s7-1200", "198.18.37.3", "22,80,102", "Siemens"},
		{"m340", "198.18.37.70", "21,22,80,502", "Schneider Electric"},
		{"compactlogix", "198.18.37.140", "22,80,44818", "Rockwell Automation"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, fp := kiNmapOS(t, c, tt.addr, tt.ports)
			t.Logf("nmap -O %s (%s):\n%s\nfingerprint: %s", tt.addr, tt.name, out, fp)
			if top := topGuess(out); !strings.HasPrefix(top, tt.want) {
				t.Errorf("nmap's top guess for %s is %q, want %s…", tt.name, top, tt.want)
			}
		})
	}
}
