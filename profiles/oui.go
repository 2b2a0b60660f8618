package profiles

import (
	"fmt"
	"net"
	"sort"
	"strings"
)

//go:generate go run ./internal/ouigen -in /usr/share/ieee-data/oui.csv -out oui_table.go

// OUI is an IEEE MA-L assignment: the first three bytes of a vendor's MAC addresses.
type OUI [3]byte

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
// "schneider", "rockwell", "beckhoff", "phoenix", "wago", "honeywell", "supermicro").
func VendorOUIs(vendor string) ([]OUI, bool) {
	o, ok := vendorOUIs[strings.ToLower(vendor)]
	return append([]OUI(nil), o...), ok
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
// one of the vendor's OUIs and three bytes from the seed. It is the one function behind
// every MAC a host shows: the databus function "icsnare.mac" (SNMP ifPhysAddress and
// engine id, HTTP pages, IPMI) and the kernel's ARP and neighbour answers, which compute
// the same from the same seed. ouis must not be empty.
func HostMAC(seed uint64, ouis []OUI) net.HardwareAddr {
	x := Mix64(seed ^ macSalt)
	o := ouis[(x>>40)%uint64(len(ouis))]
	return net.HardwareAddr{o[0], o[1], o[2], byte(x >> 16), byte(x >> 8), byte(x)}
}

// MACFunction is the databus function that gives a host its MAC ("aa:bb:cc:dd:ee:ff"):
// param is a vendor of the OUI table or a list of OUIs.
//
//	<key name="MacAddress"><value type="function" param='"siemens"'>icsnare.mac</value></key>
const MACFunction = "icsnare.mac"

// ouisParam turns the function's parameters into OUIs.
func ouisParam(params []any) ([]OUI, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("%s: needs a vendor (%s) or a list of OUIs", MACFunction, strings.Join(Vendors(), ", "))
	}
	var out []OUI
	for _, p := range params {
		s, ok := p.(string)
		if !ok {
			return nil, fmt.Errorf("%s: parameter %v is not a string", MACFunction, p)
		}
		if v, ok := VendorOUIs(s); ok {
			out = append(out, v...)
			continue
		}
		o, err := ParseOUI(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is neither a vendor (%s) nor an OUI: %w", MACFunction, s, strings.Join(Vendors(), ", "), err)
		}
		out = append(out, o)
	}
	return out, nil
}

// MACOUIs returns the OUIs of the profile's MAC, from the first databus key whose value
// is the function icsnare.mac; ok is false when no key uses it (the profile's MAC, if it
// has one, is then not derived from the host seed, and the kernel cannot answer for it).
func (p *Profile) MACOUIs() (key string, ouis []OUI, ok bool, err error) {
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
		return HostMAC(env.HostSeed, ouis).String(), nil
	})
}
