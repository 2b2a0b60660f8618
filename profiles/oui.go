package profiles

import (
	"fmt"
	"net"
	"sort"
	"strings"
)

//go:generate go run ./internal/ouigen -in /usr/share/ieee-data -out oui_table.go

// OUI is an IEEE MA-L assignment: the first three bytes of a vendor's MAC addresses.
type OUI [3]byte

// MACBlock is an IEEE assignment of MAC addresses: an MA-L (the 24-bit OUI), MA-M (a
// 28-bit prefix, oui28) or MA-S (36-bit, oui36) block. Vendors that hold only a small
// block (Distech Controls: MA-M 38:F7:CD:A) get their real prefix from one.
type MACBlock struct {
	Prefix [6]byte // the assignment's bits; the bits below Bits are zero
	Bits   uint8   // 24, 28 or 36
}

// Block is the MA-L block of an OUI.
func (o OUI) Block() MACBlock { return MACBlock{Prefix: [6]byte{o[0], o[1], o[2]}, Bits: 24} }

// Blocks turns OUIs into their MA-L blocks.
func Blocks(ouis []OUI) []MACBlock {
	out := make([]MACBlock, len(ouis))
	for i, o := range ouis {
		out[i] = o.Block()
	}
	return out
}

// String formats the block as 00:1B:1B (MA-L), 38:F7:CD:A0:00:00/28 or
// 70:B3:D5:F2:F0:00/36.
func (b MACBlock) String() string {
	if b.Bits == 24 {
		return OUI{b.Prefix[0], b.Prefix[1], b.Prefix[2]}.String()
	}
	return fmt.Sprintf("%s/%d", strings.ToUpper(net.HardwareAddr(b.Prefix[:]).String()), b.Bits)
}

// Contains reports whether mac is in the block.
func (b MACBlock) Contains(mac net.HardwareAddr) bool {
	if len(mac) != 6 {
		return false
	}
	for i := range 6 {
		if mac[i]&blockMask(b.Bits, i) != b.Prefix[i] {
			return false
		}
	}
	return true
}

// blockMask is the mask of byte i of a prefix of bits bits.
func blockMask(bits uint8, i int) byte {
	n := int(bits) - 8*i
	switch {
	case n >= 8:
		return 0xff
	case n <= 0:
		return 0
	}
	return byte(0xff << (8 - n))
}

// ParseMACBlock parses an OUI ("00:1B:1B") or a block "38:F7:CD:A0:00:00/28" (or
// "38F7CDA", seven hex digits, nine for an MA-S block).
func ParseMACBlock(s string) (MACBlock, error) {
	s = strings.TrimSpace(s)
	if pfx, bits, ok := strings.Cut(s, "/"); ok {
		hw, err := net.ParseMAC(pfx)
		if err != nil || len(hw) != 6 {
			return MACBlock{}, fmt.Errorf("MAC block %q: want six bytes and /28 or /36", s)
		}
		var b MACBlock
		switch bits {
		case "24":
			b.Bits = 24
		case "28":
			b.Bits = 28
		case "36":
			b.Bits = 36
		default:
			return MACBlock{}, fmt.Errorf("MAC block %q: length /%s, want 24, 28 or 36", s, bits)
		}
		copy(b.Prefix[:], hw)
		return b, b.check(s)
	}
	h := strings.NewReplacer(":", "", "-", "", ".", "").Replace(s)
	if len(h) == 7 || len(h) == 9 {
		var b MACBlock
		b.Bits = uint8(4 * len(h))
		for i, c := range strings.ToLower(h) {
			d := strings.IndexRune("0123456789abcdef", c)
			if d < 0 {
				return MACBlock{}, fmt.Errorf("MAC block %q: not hex", s)
			}
			b.Prefix[i/2] |= byte(d) << (4 * (1 - i%2))
		}
		return b, b.check(s)
	}
	o, err := ParseOUI(s)
	if err != nil {
		return MACBlock{}, err
	}
	return o.Block(), nil
}

func (b MACBlock) check(s string) error {
	if b.Prefix[0]&3 != 0 {
		return fmt.Errorf("MAC block %q: multicast or locally administered", s)
	}
	for i := range 6 {
		if b.Prefix[i]&^blockMask(b.Bits, i) != 0 {
			return fmt.Errorf("MAC block %q: bits set beyond /%d", s, b.Bits)
		}
	}
	return nil
}

// String formats the OUI as 00:1B:1B.
func (o OUI) String() string { return fmt.Sprintf("%02X:%02X:%02X", o[0], o[1], o[2]) }

// ParseOUI parses "00:1B:1B", "00-1b-1b" or "001B1B".
func ParseOUI(s string) (OUI, error) {
	h := strings.NewReplacer(":", "", "-", "", ".", "").Replace(strings.TrimSpace(s))
	var o OUI
	if len(h) != 6 {
		return o, fmt.Errorf("OUI %q: want three bytes", s)
	}
	for i := range o {
		var b byte
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &b); err != nil {
			return o, fmt.Errorf("OUI %q: %w", s, err)
		}
		o[i] = b
	}
	if o[0]&3 != 0 {
		return o, fmt.Errorf("OUI %q: multicast or locally administered", s)
	}
	return o, nil
}

// VendorOUIs returns the MA-L assignments of a vendor of the OUI table ("siemens",
// "schneider", "rockwell", "beckhoff", "phoenix", "wago", "honeywell", "supermicro"); a
// vendor that holds only smaller blocks ("distech") has none (see VendorBlocks).
func VendorOUIs(vendor string) ([]OUI, bool) {
	bs, ok := vendorOUIs[strings.ToLower(vendor)]
	var out []OUI
	for _, b := range bs {
		if b.Bits == 24 {
			out = append(out, OUI{b.Prefix[0], b.Prefix[1], b.Prefix[2]})
		}
	}
	return out, ok
}

// VendorBlocks returns every block of a vendor of the OUI table: MA-L, MA-M and MA-S.
func VendorBlocks(vendor string) ([]MACBlock, bool) {
	b, ok := vendorOUIs[strings.ToLower(vendor)]
	return append([]MACBlock(nil), b...), ok
}

// Vendors lists the vendors of the OUI table, sorted.
func Vendors() []string {
	out := make([]string, 0, len(vendorOUIs))
	for v := range vendorOUIs {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// macSalt separates the MAC's draw from other uses of the host seed.
const macSalt = 0x6d61632d6f756921

// Mix64 is the splitmix64 finaliser. The kernel programs (bpf/kident.c) compute the
// same function, so a host's MAC is derived identically on both sides.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// HostMAC derives a host's MAC from its seed (protocols.Host.Seed, EngineEnv.HostSeed):
// one of the vendor's OUIs and three bytes from the seed. ouis must not be empty. See
// HostMACIn.
func HostMAC(seed uint64, ouis []OUI) net.HardwareAddr {
	return HostMACIn(seed, Blocks(ouis))
}

// HostMACIn derives a host's MAC from its seed in one of the vendor's blocks: the block's
// prefix and the seed's bits below it. It is the one function behind every MAC a host
// shows: the databus function "icsnare.mac" (SNMP ifPhysAddress and engine id, HTTP
// pages, IPMI) and the kernel's ARP and neighbour answers, which compute the same from
// the same seed. For an MA-L block it is HostMAC. blocks must not be empty.
func HostMACIn(seed uint64, blocks []MACBlock) net.HardwareAddr {
	x := Mix64(seed ^ macSalt)
	b := blocks[(x>>40)%uint64(len(blocks))]
	r := [6]byte{3: byte(x >> 16), 4: byte(x >> 8), 5: byte(x)}
	mac := make(net.HardwareAddr, 6)
	for i := range 6 {
		m := blockMask(b.Bits, i)
		mac[i] = b.Prefix[i]&m | r[i]&^m
	}
	return mac
}

// MACFunction is the databus function that gives a host its MAC ("aa:bb:cc:dd:ee:ff"):
// param is a vendor of the OUI table or a list of OUIs and blocks ("38:F7:CD:A0:00:00/28").
//
//	<key name="MacAddress"><value type="function" param='"siemens"'>icsnare.mac</value></key>
const MACFunction = "icsnare.mac"

// ouisParam turns the function's parameters into MAC blocks.
func ouisParam(params []any) ([]MACBlock, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("%s: needs a vendor (%s) or a list of OUIs", MACFunction, strings.Join(Vendors(), ", "))
	}
	var out []MACBlock
	for _, p := range params {
		s, ok := p.(string)
		if !ok {
			return nil, fmt.Errorf("%s: parameter %v is not a string", MACFunction, p)
		}
		if v, ok := VendorBlocks(s); ok {
			out = append(out, v...)
			continue
		}
		o, err := ParseMACBlock(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is neither a vendor (%s) nor an OUI: %w", MACFunction, s, strings.Join(Vendors(), ", "), err)
		}
		out = append(out, o)
	}
	return out, nil
}

// MACOUIs returns the MAC blocks of the profile's MAC, from the first databus key whose
// value is the function icsnare.mac; ok is false when no key uses it (the profile's MAC,
// if it has one, is then not derived from the host seed, and the kernel cannot answer for
// it).
func (p *Profile) MACOUIs() (key string, ouis []MACBlock, ok bool, err error) {
	if p.Schema == nil {
		return "", nil, false, nil
	}
	for _, k := range p.Schema.Keys() {
		spec, _ := p.Schema.Spec(k)
		if spec.Type != "function" || spec.Text != MACFunction {
			continue
		}
		var params []any
		if spec.param != nil {
			v, err := spec.param.Eval(checkSeed)
			if err != nil {
				return k, nil, false, err
			}
			if l, isList := v.([]any); isList {
				params = l
			} else {
				params = []any{v}
			}
		}
		ouis, err := ouisParam(params)
		if err != nil {
			return k, nil, false, err
		}
		return k, ouis, true, nil
	}
	return "", nil, false, nil
}

func init() {
	RegisterFunction(MACFunction, func(env EngineEnv, params []any) (any, error) {
		ouis, err := ouisParam(params)
		if err != nil {
			return nil, err
		}
		return HostMACIn(env.HostSeed, ouis).String(), nil
	})
}
