package snmp

import (
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

func gosnmpClient(t *testing.T, addr string, port uint16, community string) *gosnmp.GoSNMP {
	t.Helper()
	c := &gosnmp.GoSNMP{Target: addr, Port: port, Community: community, Version: gosnmp.Version2c,
		Timeout: 5 * time.Second, Retries: 0, MaxOids: 60}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

// TestTarpitParallel: a 0.5 s tarpit delays each request, not the agent: 20 parallel GETs
// finish together (Conpot sleeps in its only dispatcher loop: 20 × 0.5 s).
func TestTarpitParallel(t *testing.T) {
	srv, _ := serve(t, "testdata/tarpit", "127.0.0.1:0")
	const n = 20
	clients := make([]*gosnmp.GoSNMP, n)
	for i := range clients {
		clients[i] = gosnmpClient(t, srv.Addr.Addr().String(), srv.Addr.Port(), "public")
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Get([]string{"1.3.6.1.2.1.1.1.0"})
			if err == nil && string(r.Variables[0].Value.([]byte)) != "tarpit test" {
				err = errUnexpected(r.Variables[0].Value)
			}
			errs <- err
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("20 parallel GETs with a 0.5 s tarpit took %v", elapsed)
	if elapsed < 450*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("20 parallel tarpitted GETs took %v, want about 0.5 s", elapsed)
	}
	ev := srv.Events.OfType("snmp.request")
	if len(ev) != n {
		t.Fatalf("%d events, want %d", len(ev), n)
	}
	if !hasField(ev[0].Fields, "tarpit_ms", int64(500)) {
		t.Errorf("event lacks tarpit_ms: %+v", ev[0].Fields)
	}
}

// TestEvasion: "3;5" GETNEXTs per minute: the fourth from one source gets no answer.
func TestEvasion(t *testing.T) {
	srv, svc := serve(t, "testdata/tarpit", "127.0.0.1:0")
	c := gosnmpClient(t, srv.Addr.Addr().String(), srv.Addr.Port(), "public")
	c.Timeout = 300 * time.Millisecond
	answered := 0
	for i := 0; i < 5; i++ {
		if _, err := c.GetNext([]string{"1.3.6.1.2.1.1.1.0"}); err == nil {
			answered++
		}
	}
	if answered != 3 && svc.lim.kernel[classNext].Load() == false {
		t.Fatalf("%d of 5 GETNEXTs answered, want 3 (per-source limit)", answered)
	}
	evaded := 0
	for _, e := range srv.Events.OfType("snmp.request") {
		if hasField(e.Fields, "evaded", true) {
			evaded++
		}
	}
	if evaded != 2 {
		t.Errorf("%d evaded events, want 2", evaded)
	}
	// GETs have no limit in this profile (but a 0.5 s tarpit).
	c.Timeout = 3 * time.Second
	if _, err := c.Get([]string{"1.3.6.1.2.1.1.5.0"}); err != nil {
		t.Fatalf("GET after GETNEXT limit: %v", err)
	}
	if got := svc.RateLimits(); len(got) != 1 || got[0].Class != "next" || got[0].PerSource != 3 || got[0].Global != 5 || got[0].Port != 161 {
		t.Errorf("RateLimits() = %+v", got)
	}
}
