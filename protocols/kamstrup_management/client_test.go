package kamstrupmgmt

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestTelnetClient: Python's telnetlib (a real telnet client: it negotiates and handles
// IAC) reads the banner, the menu, the version and the configuration, changes the device
// name and quits. The console's own 0.25 s delay is kept.
func TestTelnetClient(t *testing.T) {
	py := protocoltest.NeedTool(t, "/usr/bin/python3")
	c := startConsole(t, true)
	out, err := protocoltest.Run(t, 60*time.Second, py, "testdata/console_client.py", c.Addr.Addr().String(), strconv.Itoa(int(c.Addr.Port())))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"Welcome...\r\nConnected to [" + HostMAC("00:13:EA:00:00:00", c.Host.Seed) + "]",
		"Service Menu",
		"Software Version: 5.5 (E5)",
		"OK",
		"Device Name         : feeder-12",
		"closed after Q",
	}, "\n") + "\n"
	if out != want {
		t.Fatalf("client printed %q\nwant %q", out, want)
	}
}
