package s7comm

import (
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// diskStore stands for the sensor's state store: every host made from it sees what the
// earlier ones saved.
type diskStore struct{ kept map[string][]byte }

func (d *diskStore) Save(k string, v []byte) bool  { d.kept[k] = append([]byte(nil), v...); return true }
func (d *diskStore) Saved(k string) ([]byte, bool) { v, ok := d.kept[k]; return v, ok }
func (d *diskStore) SavedKeys() (out []string) {
	for k := range d.kept {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestStopOutlivesTheHost: a CPU an attacker stopped is still stopped when its host is
// created again (after eviction or a restart).
func TestStopOutlivesTheHost(t *testing.T) {
	p := protocoltest.Profile(t, protocoltest.Station)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	disk := &diskStore{kept: map[string][]byte{}}
	addr := netip.MustParseAddr("192.0.2.10")
	mode := func(h *protocols.Host) byte {
		srv := protocoltest.ServeTCP(t, Name, svc, h, "127.0.0.1:0")
		c := session(t, srv)
		b, _, _ := c.readSZL(0x0424, 0)
		return b[11] & 0x0F
	}
	h := protocols.NewStoredHost(addr, p, 42, time.Now(), 0, disk)
	if m := mode(h); m != ModeRun {
		t.Fatalf("fresh host in mode %x", m)
	}
	srv := protocoltest.ServeTCP(t, Name, svc, h, "127.0.0.1:0")
	if r := session(t, srv).job(jobStop, nil); r.ErrClass != 0 {
		t.Fatalf("stop: %+v", r.Header)
	}
	if m := mode(protocols.NewStoredHost(addr, p, 42, time.Now(), 0, disk)); m != ModeStop {
		t.Fatalf("regenerated host in mode %x, want STOP", m)
	}
	if m := mode(protocols.NewHost(addr, p, 42, time.Now())); m != ModeRun {
		t.Fatalf("a host without the store in mode %x", m)
	}
}
