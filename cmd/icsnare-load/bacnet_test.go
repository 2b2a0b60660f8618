package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/bacnet"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestBACnetLoad runs the bacnet workload against the BACnet service: every request gets
// its ComplexACK.
func TestBACnetLoad(t *testing.T) {
	p := protocoltest.Profile(t, "../../protocols/bacnet/testdata/controller")
	proto, ok := protocols.Lookup(bacnet.Name)
	if !ok {
		t.Fatal("bacnet is not registered")
	}
	svc := protocoltest.Configure(t, proto, p).(protocols.PacketService)
	a := testAddr()
	h := protocoltest.Host(p, a, 1)
	srv := protocoltest.ServeUDP(t, bacnet.Name, svc, h, netip.AddrPortFrom(a, 0).String())
	res, err := measure(newBACnet(opts{property: 77}), srv.Addr.String(), 2, 0, 30*time.Second, 200, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.ok < 200 || res.failed != 0 {
		t.Fatalf("%d answered, %d failed", res.ok, res.failed)
	}
	// An unknown property is an Error, counted as a failure.
	res, err = measure(newBACnet(opts{property: 999}), srv.Addr.String(), 1, 0, 30*time.Second, 5, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.ok != 0 || res.failed < 5 {
		t.Fatalf("unknown property: %d answered, %d failed", res.ok, res.failed)
	}
	for _, prop := range []int{77, 371, 0x12345} {
		if b := readPropertyRequest(1, prop); len(b) != int(b[2])<<8|int(b[3]) {
			t.Fatalf("BVLC length of %x", b)
		}
	}
}
