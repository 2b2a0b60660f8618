package guardianast

import (
	"net/netip"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"testing"
)

// BenchmarkInventory renders the I20100 display report of a host (the tank models and the
// databus reads included).
func BenchmarkInventory(b *testing.B) {
	p := loadConpot(b)
	svc := configure(b, p)
	h := protocoltest.Host(p, netip.MustParseAddr("127.31.200.9"), 19)
	c, _ := ParseCommand([]byte("I20100"))
	svc.reply(h, c, nil)
	b.ReportAllocs()
	for b.Loop() {
		svc.reply(h, c, nil)
	}
}

// BenchmarkComputerInventory renders i20100.
func BenchmarkComputerInventory(b *testing.B) {
	p := loadConpot(b)
	svc := configure(b, p)
	h := protocoltest.Host(p, netip.MustParseAddr("127.31.200.9"), 19)
	c, _ := ParseCommand([]byte("i20100"))
	b.ReportAllocs()
	for b.Loop() {
		svc.reply(h, c, nil)
	}
}
