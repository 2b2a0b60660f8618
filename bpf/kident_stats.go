package bpf

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/cilium/ebpf"
)

// Pinned names of the identity maps `icsnare xdp stats` reads, next to the limiter's.
const (
	pinIdentityCounters = "identity_counters"
	pinIdentityDark     = "identity_dark"
)

// identityMaps are the identity's counters and dark hosts, in this process or pinned.
type identityMaps struct {
	counters, dark *ebpf.Map
}

// counters sums the per-CPU counters by name.
func (m identityMaps) read() (map[string]uint64, error) {
	out := make(map[string]uint64, len(identityCounters))
	for i, name := range identityCounters {
		if uint32(i) >= m.counters.MaxEntries() {
			break // a sensor built before this counter existed
		}
		var per []uint64
		if err := m.counters.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("identity: counter %s: %w", name, err)
		}
		var s uint64
		for _, v := range per {
			s += v
		}
		out[name] = s
	}
	return out, nil
}

func (m identityMaps) darkHosts() ([]DarkHost, error) {
	var out []DarkHost
	var k [16]byte
	var v uint64
	it := m.dark.Iterate()
	for it.Next(&k, &v) {
		out = append(out, DarkHost{Addr: netip.AddrFrom16(k).Unmap(), Since: v})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("identity: dark hosts: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out, nil
}

// identityLines are the counters `icsnare xdp stats` prints, with what they mean.
var identityLines = []struct{ name, what string }{
	{"arp_reply", "ARP requests answered"},
	{"nd_reply", "neighbour solicitations answered"},
	{"arp_malformed", "malformed ARP requests (no answer)"},
	{"nd_malformed", "malformed solicitations (no answer)"},
	{"conflict", "conflicts (a machine claimed a host's address)"},
	{"dark_drop", "frames to dark hosts dropped"},
	{"mac_mismatch", "frames to a host with another MAC dropped (foreign MAC)"},
	{"mac_ok", "frames to a host's MAC handed to the stack"},
	{"edge_drop", "to subnet edges and absent addresses dropped"},
	{"syn_reset", "SYNs reset in XDP (closed ports)"},
	{"syn_drop", "SYNs dropped in XDP (own address, policy drop; T7 probes of silent personas)"},
	{"syn_stripped", "SYN options the persona lacks removed"},
	{"tc_mac", "frames sent with a host's MAC (rewrites)"},
	{"tc_personality", "packets shaped by a personality (rewrites)"},
	{"tc_synack", "SYN-ACKs rewritten"},
	{"answer_pass", "answers within the per-destination byte bucket"},
	{"answer_drop", "answers over it, dropped"},
	{"answer_drop_bytes", "bytes of those"},
	{"vlan_other", "frames of other VLANs passed"},
	{"event_lost", "conflict records lost"},
}

func (m identityMaps) writeStats(w io.Writer, head string) error {
	c, err := m.read()
	if err != nil {
		return err
	}
	dark, err := m.darkHosts()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, head)
	fmt.Fprintln(tw, "COUNTER\tVALUE\tMEANING")
	for _, l := range identityLines {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", l.name, c[l.name], l.what)
	}
	fmt.Fprintf(tw, "dark hosts: %d\n", len(dark))
	for _, d := range dark {
		fmt.Fprintf(tw, "  %s\n", d.Addr)
	}
	return tw.Flush()
}

func (id *Identity) pinMaps() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{pinIdentityCounters: id.objs.Kcounters, pinIdentityDark: id.objs.Dark}
}

// pin pins the counters and dark hosts under dir, replacing stale pins.
func (id *Identity) pin(dir string) error {
	if err := checkBPFFS(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity pin: %w", err)
	}
	for name, m := range id.pinMaps() {
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("identity pin: remove stale %s: %w", p, err)
		}
		if err := m.Pin(p); err != nil {
			id.unpin()
			return fmt.Errorf("identity pin %s: %w", p, err)
		}
	}
	return nil
}

func (id *Identity) unpin() {
	for _, m := range id.pinMaps() {
		if m != nil && m.IsPinned() {
			_ = m.Unpin()
		}
	}
}

// openPinnedIdentity opens the identity maps pinned under dir; nil when the sensor pinned
// none (identity not loaded).
func openPinnedIdentity(dir string) (*identityMaps, error) {
	var m identityMaps
	for name, dst := range map[string]**ebpf.Map{pinIdentityCounters: &m.counters, pinIdentityDark: &m.dark} {
		mp, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if errors.Is(err, os.ErrNotExist) {
			m.close()
			return nil, nil
		}
		if err != nil {
			m.close()
			return nil, fmt.Errorf("xdp stats: open pinned %s: %w", name, err)
		}
		*dst = mp
	}
	return &m, nil
}

func (m *identityMaps) close() {
	for _, mp := range []*ebpf.Map{m.counters, m.dark} {
		if mp != nil {
			mp.Close()
		}
	}
}
