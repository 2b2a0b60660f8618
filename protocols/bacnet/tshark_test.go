package bacnet_test

import (
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// wellFormed are requests a real client could send (no deliberately malformed ones: tshark
// rightly flags those), with what the device answers.
var wellFormed = []struct {
	name, frame string
	broadcast   bool
}{
	{"ReadProperty of an unknown object (Error)", "810a0011 0104 0005100c 0c00000063 1955", false},
	{"ReadProperty of an unknown property (Error)", "810a0011 0104 0005110c 0c023fffff 19c8", false},
	{"SubscribeCOV (SimpleACK, then a COV notification)", "810a0015 0104 00051205 0901 1c00000001 2900 393c", false},
	{"SubscribeCOV with confirmed notifications", "810a0015 0104 00051905 0902 1c00000001 2901 393c", false},
	{"SubscribeCOV cancellation", "810a0011 0104 00051a05 0902 1c00000001", false},
	{"ReadPropertyMultiple ALL, known and unknown object", "810a001c 0104 0005130e 0c023fffff 1e09081f 0c0140004d 1e09081f", false},
	{"WriteProperty (SimpleACK)", "810a001a 0104 0005140f 0c00800002 1955 3e4441b000003f 4908", false},
	{"WriteProperty of vendor-name (Error)", "810a0017 0104 0005150f 0c023fffff 1979 3e730078783f", false},
	{"DeviceCommunicationControl (Error)", "810a0015 0104 00051611 1901 2d0700736563726574", false},
	{"ReinitializeDevice (Error)", "810a0011 0104 00051814 0901 1d0300 6162", false},
	{"segmented request (Abort)", "810a0011 0104 0e05170001 0f 0c00800002", false},
	{"Register-Foreign-Device (BVLC-Result NAK)", "81050006 003c", false},
	{"Who-Has by name (I-Have)", "810a000d 0100 1007 3c00534154", false},
	{"ReadProperty through a router (answer with DNET)", "810a0017 010c 0005 03aabbcc 0005010c 0c023fffff 194b", false},
	{"Who-Is-Router-To-Network (ignored)", "810b0007 0180 00", true},
	{"global Who-Is to the broadcast address (an I-Am from every host)", "810b000c 0120ffff00ff 1008", true},
	{"UTC-Time-Synchronization", "810a0012 0100 1009 a47e0b1d07 b40a141e00", false},
}

// TestTsharkDissects captures nmap, @bacnet-js/client and raw requests against a /24 served
// by the sensor and has tshark dissect them as BVLC/BACnet-NPDU/BACnet-APDU: no malformed
// packets, no expert warnings or errors.
func TestTsharkDissects(t *testing.T) {
	tshark := protocoltest.NeedTool(t, "tshark")
	dumpcap := protocoltest.NeedTool(t, "dumpcap")
	nmap := protocoltest.NeedTool(t, "nmap")
	node := protocoltest.NeedTool(t, "node")
	mods := nodeModules(t)
	protocoltest.NeedRoot(t)
	r := startSensor(t, plantProfile(t, 120), unbounded)
	host := r.host(10)
	pcap := filepath.Join(t.TempDir(), "bacnet.pcapng")
	if d := os.Getenv("BACNET_KEEP_PCAP"); d != "" {
		pcap = d
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	whoIs, _ := hex.DecodeString("810a000601001008")
	stop := protocoltest.Capture(t, dumpcap, "udp and net "+r.net+".0/24", pcap, func() {
		c.WriteToUDP(whoIs, &net.UDPAddr{IP: net.ParseIP(host), Port: 47808})
		drain(c, 100*time.Millisecond)
	})

	dst := &net.UDPAddr{IP: net.ParseIP(host), Port: 47808}
	bcast := &net.UDPAddr{IP: net.ParseIP(r.host(255)), Port: 47808}
	for _, x := range wellFormed {
		b, err := hex.DecodeString(strings.ReplaceAll(x.frame, " ", ""))
		if err != nil {
			t.Fatalf("%s: %v", x.name, err)
		}
		if n := int(b[2])<<8 | int(b[3]); n != len(b) {
			t.Fatalf("%s: BVLC length %d, frame %d octets", x.name, n, len(b))
		}
		to := dst
		if x.broadcast {
			to = bcast
		}
		if _, err := c.WriteToUDP(b, to); err != nil {
			t.Fatal(err)
		}
		drain(c, 300*time.Millisecond)
	}
	if _, err := protocoltest.Run(t, 90*time.Second, nmap, "-Pn", "-n", "-sU", "-p", "47808", "--script", "bacnet-info", host); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t, "127.0.0.1")
	if _, err := protocoltest.Run(t, 90*time.Second, node, filepath.Join("testdata", "bacnet_client.js"), mods, host, "127.0.0.1", strconv.Itoa(port)); err != nil {
		t.Fatal(err)
	}
	stop()

	out, err := protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-q", "-z", "io,phs")
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range []string{"bvlc", "bacnet", "bacapp"} {
		if !regexp.MustCompile(`(?m)^\s*` + layer + `\s+frames:(\d+)`).MatchString(out) {
			t.Errorf("no %s layer in the capture", layer)
		}
	}
	verbose, err := exec.Command(tshark, "-r", pcap, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -V: %v", err)
	}
	if strings.Contains(string(verbose), "Malformed") {
		t.Errorf("tshark reports a malformed packet:\n%s", protocoltest.GrepContext(string(verbose), "Malformed"))
	}
	expert, err := protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-q", "-z", "expert,warn")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*(Errors|Warns) \(\d+\)`).MatchString(expert) {
		t.Errorf("tshark expert info has warnings or errors")
	}
}

// drain reads answers until wait passes without one.
func drain(c *net.UDPConn, wait time.Duration) int {
	buf := make([]byte, 2048)
	n := 0
	for range 1000 {
		c.SetReadDeadline(time.Now().Add(wait))
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			return n
		}
		n++
	}
	return n
}
