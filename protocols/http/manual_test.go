package http

import (
	"os"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestManualServe serves the default profile for ICSNARE_HTTP_SERVE seconds on
// ICSNARE_HTTP_ADDR, for poking at it with curl, nmap or wrk by hand.
func TestManualServe(t *testing.T) {
	secs := os.Getenv("ICSNARE_HTTP_SERVE")
	if secs == "" {
		t.Skip("set ICSNARE_HTTP_SERVE=<seconds> to serve by hand")
	}
	d, err := time.ParseDuration(secs + "s")
	if err != nil {
		t.Fatal(err)
	}
	addr := os.Getenv("ICSNARE_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	srv, _ := startProfile(t, protocoltest.Profile(t, "default"), addr)
	t.Logf("serving on %s for %v", srv.Addr, d)
	time.Sleep(d)
}
