package ipmi

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestTsharkDecodes captures ipmitool sessions (RMCP+ suites 0, 1, 3, 16 and 17, IPMI v1.5
// with MD5 and straight password, a wrong password, an unknown user), nmap's IPMI scripts and presence pings on 623/udp and has tshark dissect
// them: RMCP, ASF, IPMI session and RMCP+ handshake layers, no malformed packet, no
// expert warning or error.
func TestTsharkDecodes(t *testing.T) {
	tshark := protocoltest.NeedTool(t, "tshark")
	dumpcap := protocoltest.NeedTool(t, "dumpcap")
	nmap := protocoltest.NeedTool(t, "nmap")
	srv := serve623(t, func(s string) string { return withSuites("0,1,2,3,15,16,17")(withV15(s)) })
	host := srv.Addr.Addr().String()
	pcap := filepath.Join(t.TempDir(), "ipmi.pcapng")
	if d := os.Getenv("IPMI_KEEP_PCAP"); d != "" {
		pcap = d
	}
	ping := unhex(t, "0600ff06 000011be 80010000") // ASF presence ping
	stop := protocoltest.Capture(t, dumpcap, "udp port 623 and host "+host, pcap, func() {
		if c, err := net.Dial("udp", srv.Addr.String()); err == nil {
			c.Write(ping)
			c.SetReadDeadline(time.Now().Add(time.Second))
			c.Read(make([]byte, 64))
			c.Close()
		}
	})
	mustIpmitool(t, srv, 3, chassisOn, "chassis", "status")
	mustIpmitool(t, srv, 17, []string{`Chassis Power Control: Down/Off`}, "power", "off")
	mustIpmitool(t, srv, 1, []string{`Chassis Power is off`}, "power", "status")
	mustIpmitool(t, srv, 16, []string{`IPMI Version              : 2.0`}, "mc", "info")
	mustIpmitool(t, srv, 0, []string{`Chassis Power is off`}, "power", "status")
	mustIpmitool(t, srv, -1, []string{`3    N/A     hmac_sha1       hmac_sha1_96    aes_cbc_128\s*`}, "channel", "getciphers", "ipmi")
	ipmitoolAs(t, srv, 17, "Administrator", "wrong", "chassis", "status")
	ipmitoolAs(t, srv, 3, "nobody", "x", "chassis", "status")
	if _, err := ipmitoolLan(t, srv, "Administrator", "Password", "chassis", "status"); err != nil {
		t.Fatal(err)
	}
	if _, err := ipmitoolLan(t, srv, "Administrator", "Password", "-A", "PASSWORD", "sel", "list"); err != nil {
		t.Fatal(err)
	}
	ipmitoolLan(t, srv, "Administrator", "wrong", "chassis", "status")
	if _, err := protocoltest.Run(t, 90*time.Second, nmap, "-Pn", "-n", "-sU", "-p", "623",
		"--script", "ipmi-version,ipmi-cipher-zero", host); err != nil {
		t.Fatal(err)
	}
	stop()

	// IPMI messages are dissected only with this preference on (tshark 4.0).
	tsh := func(args ...string) (string, error) {
		return protocoltest.Run(t, 60*time.Second, tshark, append([]string{"-o", "ipmi.dissect_bus_commands:TRUE", "-r", pcap}, args...)...)
	}
	out, err := tsh("-T", "fields", "-e", "frame.protocols")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rmcp:asf\n", "rmcp:ipmi_session:ipmi\n", "rmcp:ipmi_session:data\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no packet dissected as %s", want)
		}
	}
	if strings.Contains(out, "ipmi:data") {
		t.Errorf("an IPMI message with undissected bytes")
	}
	payloads, err := tsh("-T", "fields", "-e", "ipmi_session.payloadtype")
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{"0x10", "0x11", "0x12", "0x13", "0x14", "0x15"} {
		if !strings.Contains(payloads, pt) {
			t.Errorf("no RMCP+ payload of type %s dissected", pt)
		}
	}
	verbose, err := exec.Command(tshark, "-o", "ipmi.dissect_bus_commands:TRUE", "-r", pcap, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -V: %v", err)
	}
	if strings.Contains(string(verbose), "Malformed") {
		t.Errorf("tshark reports a malformed packet:\n%s", protocoltest.GrepContext(string(verbose), "Malformed"))
	}
	expert, err := tsh("-q", "-z", "expert,warn")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*(Errors|Warns) \(\d+\)`).MatchString(expert) {
		t.Errorf("tshark expert info has warnings or errors")
	}
}
