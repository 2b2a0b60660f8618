package protocols_test

import (
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
)

// memStore is a HostStore in memory, shared by the hosts made from it (as after eviction).
type memStore struct {
	kept   map[string][]byte
	refuse bool
}

func (m *memStore) Save(k string, v []byte) bool {
	if m.refuse {
		return false
	}
	m.kept[k] = v
	return true
}

func (m *memStore) Saved(k string) ([]byte, bool) { v, ok := m.kept[k]; return v, ok }

func (m *memStore) SavedKeys() []string {
	var out []string
	for k := range m.kept {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestStoredHostKeepsWrites(t *testing.T) {
	p, err := profiles.Open(profiles.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("192.0.2.7")
	st := &memStore{kept: map[string][]byte{}}
	h := protocols.NewStoredHost(addr, p, 42, time.Now(), 3, st)
	h.Databus.Set("sysLocation", "Halle 4")
	if !h.Persist("s7comm.mode", []byte{4, 8}) {
		t.Fatal("Persist refused")
	}
	again := protocols.NewStoredHost(addr, p, 42, time.Now(), 3, st)
	if v, _ := again.Databus.GetString("sysLocation"); v != "Halle 4" {
		t.Fatalf("regenerated host: sysLocation %q", v)
	}
	if v, ok := again.Persisted("s7comm.mode"); !ok || string(v) != "\x04\x08" {
		t.Fatalf("regenerated host: s7comm.mode %q %v", v, ok)
	}
	if again.Boots != 3 {
		t.Fatalf("boots %d", again.Boots)
	}
	st.kept["db/sysContact"] = []byte{0xff} // corrupt: the template's value serves
	third := protocols.NewStoredHost(addr, p, 42, time.Now(), 0, st)
	if third.Databus.Written("sysContact") {
		t.Fatal("a corrupt kept value was restored")
	}
	st.refuse = true
	if third.Persist("x", nil) {
		t.Fatal("refusal not reported")
	}
	plain := protocols.NewHost(addr, p, 42, time.Now())
	plain.Databus.Set("sysLocation", "x")
	if plain.Persist("k", nil) {
		t.Fatal("a host without a store kept something")
	}
}
