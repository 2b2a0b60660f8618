package sensor

import (
	"strings"
	"testing"
)

// TestIdentityNmapOSPersonas: nmap -O of the S7-1200, M340 and CompactLogix personalities
// in a veth namespace names each device's own vendor: nmap-os-db has none of these
// models, so the guess is the vendor's nearest entry (Siemens Simatic TDC, whose stack
// answers as HoneyPLC's S7-1200 fingerprint does; Schneider Electric TSX ETY;
// Rockwell 1756 ControlLogix). Ties at the top score are nmap's: the entries differ only
// in what the kernel programs cannot shape (ISN sequences).
func TestIdentityNmapOSPersonas(t *testing.T) {
	s, c := newKiPair(t)
	kiSensorWith(t, s, func(cfg *Config) {
		cfg.Hosts = []HostRule{{Addresses: []string{"198.18.37.0/26"}, Profile: "s7-1200"},
			{Addresses: []string{"198.18.37.64/26"}, Profile: "m340"},
			{Addresses: []string{"198.18.37.128/26"}, Profile: "compactlogix"}}
	})
	for _, tt := range []struct {
		name, addr, ports, guess string
		fp                       []string // in nmap's fingerprint
	}{
		{"s7-1200", "198.18.37.3", "22,80,102", "Siemens",
			[]string{"TI=I", "O1=M5B4%O2=M578%O3=M280", "W1=2000", "T1(R=Y%DF=N%T=20", "T6(R=N)", "T7(R=N)", "IPL=38", "IE(R=Y%DFI=N%T=20%CD=S)"}},
		{"m340", "198.18.37.70", "21,22,80,502", "Schneider Electric TSX ETY",
			[]string{"O1=M200NW0", "W1=2000", "T4(R=Y%DF=N%T=40%W=2000", "T6(R=Y%DF=N%T=40%W=0", "T7(R=N)", "IPL=38", "RIPCK=Z%RUCK=0"}},
		{"compactlogix", "198.18.37.140", "22,80,44818", "Rockwell Automation",
			[]string{"TI=BI", "CI=BI", "II=BI", "O2=M5B4NW0", "O6=M5B4", "W1=2710", "T1(R=Y%DF=Y", "T4(R=Y%DF=N", "T7(R=Y%DF=N", "U1(R=Y%DF=N", "CD=Z"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, fp := kiNmapOS(t, c, tt.addr, tt.ports)
			t.Logf("nmap -O %s (%s):\n%s", tt.addr, tt.name, out)
			top, own := guessScore(out, ""), guessScore(out, tt.guess)
			if topGuess(out) == "" || own == 0 || own != top {
				t.Errorf("%s: %q scores %d%%, the top guess (%q) %d%%", tt.name, tt.guess, own, topGuess(out), top)
			}
			if strings.Contains(topGuess(out), "Linux") {
				t.Errorf("%s: nmap guesses Linux: %s", tt.name, topGuess(out))
			}
			for _, want := range tt.fp {
				if !strings.Contains(fp, want) {
					t.Errorf("%s: fingerprint lacks %s: %s", tt.name, want, fp)
				}
			}
		})
	}
}
