package profiles

import (
	"fmt"
	"regexp"
	"strings"
)

// IPID is how a stack numbers the IPv4 identification field.
type IPID uint8

// IP-ID behaviours (nmap's TI/CI/II: I incremental, Z zero, RD random).
const (
	IPIDKeep        IPID = iota // leave Linux's value
	IPIDIncremental             // one counter per host, +1 per packet (TI=I, SS=S)
	IPIDZero                    // always 0 (TI=Z)
	IPIDRandom                  // random per packet (TI=RD)
	// IPIDSwapped is incremental, written in a little-endian host's byte order: the
	// identification grows by 256 per packet on the wire (nmap TI=BI).
	IPIDSwapped
)

func (m IPID) String() string {
	return [...]string{"keep", "incremental", "zero", "random", "swapped"}[m]
}

// Personality is a device's TCP/IP stack as the kernel programs shape it on the wire.
// Facts come from nmap-os-db (the fingerprint named in Source): TG is the initial TTL,
// TI the IP-ID sequence, DF the don't-fragment bit, W1 the SYN-ACK window, O1 the
// SYN-ACK options.
type Personality struct {
	Name   string // the table key
	Vendor string // the OUI table's vendor, for MACs
	Source string // the nmap-os-db fingerprint the values come from

	TTL uint8 // initial TTL of every IPv4 packet and IPv6 hop limit
	// TTLOpen is the initial TTL of TCP segments sent from a port the host serves
	// (SYN-ACKs, data, the resets of open ports: nmap's ECN, T1-T4); 0 means TTL. Some
	// devices answer from two stacks (an S7-300 CPU's CP: T=5A on open ports, 78 on
	// closed ports and ICMP in nmap-os-db).
	TTLOpen uint8
	IPID    IPID
	// ICMPIPID numbers ICMP messages (echo replies, errors) when not IPIDKeep (nmap II
	// and the U1 reply's IP-ID); IPIDKeep: as IPID.
	ICMPIPID IPID
	DF       bool // the don't-fragment bit on every IPv4 packet
	// ICMPNoDF: ICMP messages never carry DF, even with DF (nmap U1 DF=N, IE DFI=N).
	ICMPNoDF bool
	// FINSilent: a segment with FIN but neither SYN, ACK nor RST to a closed port gets no
	// reset (nmap T7 R=N; the XDP program drops it).
	FINSilent bool
	// ACKSilent: a bare ACK to a closed port gets no reset (nmap T6 R=N; the XDP program
	// drops it).
	ACKSilent bool
	// RSTNoDF: resets never carry DF, though the stack's other segments do (nmap T4-T7
	// DF=N with T1 DF=Y).
	RSTNoDF bool
	// RSTWindow: a reset from a port the host serves carries Window rather than 0 (nmap
	// T4 W=2000 of the Modicon stack).
	RSTWindow bool
	// QuoteZeroChecksums: ICMP errors quote the offending datagram with its IP header
	// checksum and UDP checksum zeroed, as some embedded stacks rebuild them (nmap U1
	// RIPCK=Z RUCK=0); needs ICMPQuote.
	QuoteZeroChecksums bool
	Window             uint16 // the SYN-ACK window
	// MSS is the SYN-ACK's MSS option (nmap O1 is the answer to a 1460 MSS). With
	// EchoMSS, the device answers min(MSS, the client's MSS) and MSS without one.
	MSS     uint16
	EchoMSS bool
	// MSSDefault is the SYN-ACK's MSS, with EchoMSS, when the client's SYN has none
	// (nmap O4); 0 means MSS.
	MSSDefault uint16
	// MSSBand {lo, hi, to}: with EchoMSS, a client MSS from lo to hi is answered with to
	// (the S7 answers 512 to nmap O3's 640); zero: none.
	MSSBand [3]uint16
	// Options are the SYN-ACK's options in nmap's notation (M MSS, S SACK permitted, T
	// timestamp, N NOP, W window scale, L end of list), in their order. Options the
	// device lacks are removed from the client's SYN before the sensor's stack sees it,
	// so the connection never uses them.
	Options string
	// EchoCodeZero: ICMP echo replies carry code 0 whatever the request's code (nmap IE CD=Z).
	EchoCodeZero bool
	// ECN: the stack negotiates ECN (nmap ECN CC=Y); without it the client's ECN request
	// is removed from its SYN, so the SYN-ACK carries no ECE (CC=N).
	ECN bool
	// SYNFIN: a SYN with FIN (and PSH, URG) to an open port is answered like a SYN (nmap
	// T3 R=Y); Linux drops it.
	SYNFIN bool
	// ICMPQuote is how many bytes of the offending datagram beyond its IP header an ICMP
	// error quotes (8 for most embedded stacks: nmap U1 IPL=38); 0 keeps Linux's (as much
	// as fits in 576 bytes).
	ICMPQuote int
}

// HasOption reports whether the SYN-ACK options contain kind c (one of M S T W).
func (p Personality) HasOption(c byte) bool { return strings.IndexByte(p.Options, c) >= 0 }

// WScale is the window scale option's value in Options (W followed by hex digits), -1 when
// the personality has none.
func (p Personality) WScale() int {
	i := strings.IndexByte(p.Options, 'W')
	if i < 0 {
		return -1
	}
	v := 0
	for _, c := range p.Options[i+1:] {
		d := strings.IndexRune("0123456789ABCDEF", c)
		if d < 0 {
			break
		}
		v = v*16 + d
	}
	return v
}

var optionsRE = regexp.MustCompile(`^(M|S|T11|T10|T00|T01|N|W[0-9A-F]|L)*$`)

// Validate checks the personality's values.
func (p Personality) Validate() error {
	switch {
	case p.TTL == 0:
		return fmt.Errorf("personality %q: TTL 0", p.Name)
	case p.IPID > IPIDSwapped || p.ICMPIPID > IPIDSwapped:
		return fmt.Errorf("personality %q: unknown IP-ID mode %d/%d", p.Name, p.IPID, p.ICMPIPID)
	case !optionsRE.MatchString(p.Options):
		return fmt.Errorf("personality %q: options %q not in nmap's notation (M S T11 N W<hex> L)", p.Name, p.Options)
	case p.HasOption('M') && p.MSS == 0:
		return fmt.Errorf("personality %q: an MSS option needs an MSS", p.Name)
	case p.ICMPQuote < 0 || p.ICMPQuote > 64:
		return fmt.Errorf("personality %q: ICMP quote %d outside 0..64", p.Name, p.ICMPQuote)
	case p.QuoteZeroChecksums && p.ICMPQuote == 0:
		return fmt.Errorf("personality %q: zeroed quote checksums need an ICMP quote length", p.Name)
	case p.WScale() > 14:
		return fmt.Errorf("personality %q: window scale %d over 14", p.Name, p.WScale())
	}
	if _, ok := vendorOUIs[p.Vendor]; !ok {
		return fmt.Errorf("personality %q: vendor %q not in the OUI table", p.Name, p.Vendor)
	}
	return nil
}

// personalities is the table keyed by persona. match selects a profile by its template's
// vendor and unit (case-insensitive).
var personalities = []struct {
	vendor, unit *regexp.Regexp
	p            Personality
}{
	{regexp.MustCompile(`(?i)^siemens$`), regexp.MustCompile(`(?i)S7-1200|CPU 121[1257]C`), Personality{
		Name: "siemens-s7-1200", Vendor: "siemens",
		Source: "HoneyPLC's S7-1200 nmap fingerprint (peers.md §2 tell 10): TG=20, W=2000, MSS only, no DF",
		// SEQ TI=I SS=S TS=U; OPS O1=M5B4 (MSS echoed up to 1460); WIN W1..W6=2000;
		// T1 DF=N TG=20; IE CD=S.
		TTL: 32, IPID: IPIDIncremental, DF: false, Window: 0x2000,
		MSS: 1460, EchoMSS: true, Options: "M", ICMPQuote: 8,
		// T5-T7 are not in HoneyPLC's fingerprint: as nmap-os-db's Siemens Simatic TDC
		// (the same O1-O6, W=2000, TG=20), no reset to an ACK or a FIN at a closed port.
		FINSilent: true, ACKSilent: true,
	}},
	{regexp.MustCompile(`(?i)^schneider`), regexp.MustCompile(`(?i)M340|BMX ?P34`), Personality{
		Name: "schneider-m340", Vendor: "schneider",
		Source: "Schneider Electric TSX ETY programmable logic controller (the Modicon VxWorks stack M340 CPUs share)",
		// SEQ CI=I II=I TS=U; OPS O1..O6=M200NW0 (MSS 512 whatever the client offers);
		// WIN W1..W6=2000; T1 DF=N TG=40; IE CD=S.
		TTL: 64, IPID: IPIDIncremental, DF: false, Window: 0x2000,
		MSS: 512, Options: "MNW0",
		// T4 W=2000; T7 R=N; U1 IPL=38 RIPCK=Z RUCK=0.
		RSTWindow: true, FINSilent: true, ICMPQuote: 8, QuoteZeroChecksums: true,
	}},
	{regexp.MustCompile(`(?i)^rockwell|allen.?bradley`), regexp.MustCompile(`(?i)1769-L|CompactLogix`), Personality{
		Name: "rockwell-logix", Vendor: "rockwell",
		Source: "Rockwell Automation 1756-L8xE ControlLogix processor (the Logix controllers' stack; nmap-os-db has no CompactLogix entry)",
		// SEQ TI=BI CI=BI II=BI SS=S TS=U; OPS O1..O5=M5B4NW0 O6=M5B4 (1460 whatever
		// the client offers); WIN W1..W6=2710; T1 DF=Y TG=40; T4-T7 DF=N; U1 DF=N;
		// ECN CC=N; IE CD=Z.
		TTL: 64, IPID: IPIDSwapped, DF: true, RSTNoDF: true, ICMPNoDF: true, Window: 0x2710,
		MSS: 1460, Options: "MNW0", EchoCodeZero: true,
	}},
	{regexp.MustCompile(`(?i)^siemens$`), regexp.MustCompile(`(?i)S7-[234]00|CP ?343|CP ?443`), Personality{
		Name: "siemens-s7-300", Vendor: "siemens",
		Source: "Siemens Simatic 300 programmable logic controller (CPU/CP firmware >= 3.1)",
		// SEQ TI=I CI=I II=I SS=S TS=U; OPS O1=M5B4 O2=M578 O3=M200 O4=M200 O5=M218
		// O6=M109 (nmap's probes offer 1460, 1400, 640, none, 536, 265);
		// WIN W1..W6=800; T1/T3/ECN DF=N TG=80; IE CD=Z. T (nmap's initial TTL after
		// the hop distance): 55-5F on open ports (ECN, T1, T3, T4), 73-7D on closed
		// ports (T5-T7), U1 and IE.
		TTL: 0x78, TTLOpen: 0x5a, IPID: IPIDIncremental, DF: false, Window: 0x800,
		MSS: 1460, EchoMSS: true, MSSDefault: 512, MSSBand: [3]uint16{537, 1024, 512}, Options: "M", EchoCodeZero: true,
		// ECN CC=N; T3 R=Y; U1 IPL=38.
		SYNFIN: true, ICMPQuote: 8,
	}},
	{regexp.MustCompile(`(?i)^super ?micro$`), regexp.MustCompile(`(?i)BMC`), Personality{
		Name: "supermicro-bmc", Vendor: "supermicro",
		Source: "Supermicro IPMI BMC (Linux 2.6.24)",
		// SEQ TI=Z CI=Z II=I TS=7; OPS O1..O5=M556ST11NW2 (MSS 1366: the BMC's
		// link); WIN W1=16A0; T1 DF=Y TG=40; T7 R=N; U1 DF=N; IE DFI=N CD=S.
		TTL: 64, IPID: IPIDZero, ICMPIPID: IPIDIncremental, DF: true, ICMPNoDF: true, FINSilent: true, Window: 0x16A0,
		MSS: 0x556, Options: "MST11NW2",
	}},
}

// Personalities lists the table's entries.
func Personalities() []Personality {
	out := make([]Personality, len(personalities))
	for i, e := range personalities {
		out[i] = e.p
	}
	return out
}

// LookupPersonality returns the table's entry called name.
func LookupPersonality(name string) (Personality, bool) {
	for _, e := range personalities {
		if e.p.Name == name {
			return e.p, true
		}
	}
	return Personality{}, false
}

// Personality returns the stack of the profile's device: the table's entry for its
// template's vendor and unit; ok is false when the table has none (the host then keeps
// the sensor's own stack).
func (p *Profile) Personality() (Personality, bool) {
	for _, e := range personalities {
		if e.vendor.MatchString(strings.TrimSpace(p.Meta.Vendor)) && e.unit.MatchString(p.Meta.Unit) {
			return e.p, true
		}
	}
	return Personality{}, false
}
