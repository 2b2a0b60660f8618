package stix

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// SpecVersion is the STIX version of every object this package makes.
const SpecVersion = "2.1"

// scoNamespace is the UUIDv5 namespace of STIX Cyber-observable Object ids (STIX 2.1
// §2.9): an SCO's id is UUIDv5(scoNamespace, JCS(its ID contributing properties)).
var scoNamespace = uuid.MustParse("00abedb4-aa42-466c-9c01-fed23315a9b7")

// icsnareNamespace is the UUIDv5 namespace of the ids this package derives itself (the
// sensor's identity).
var icsnareNamespace = uuid.NewSHA1(uuid.NameSpaceDNS, []byte("stix.icsnare"))

// Timestamp formats t as STIX does: RFC 3339, UTC, milliseconds (created and modified
// must be precise to the millisecond).
func Timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// newID returns a random (UUIDv4) id of an object of type typ.
func newID(typ string) string { return typ + "--" + uuid.NewString() }

// scoID returns the deterministic id of an SCO of type typ whose ID contributing
// properties are props.
func scoID(typ string, props map[string]any) string {
	return typ + "--" + uuid.NewSHA1(scoNamespace, canonicalJSON(props)).String()
}

// canonicalJSON encodes v as the JSON Canonicalization Scheme (RFC 8785) does for the
// values SCO ids are made of (strings, integers, lists and objects of them): keys sorted,
// no white space, no HTML escaping.
func canonicalJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("stix: canonical JSON of an SCO: " + err.Error()) // only our own values get here
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// IdentityID returns the stable id of the identity of the sensor named sensorID.
func IdentityID(sensorID string) string {
	return "identity--" + uuid.NewSHA1(icsnareNamespace, []byte("sensor:"+sensorID)).String()
}

// AddrID returns the id of the ipv4-addr or ipv6-addr SCO of a.
func AddrID(a netip.Addr) string {
	a = a.Unmap()
	// the canonical JSON of {"value": a}, built directly: an address needs no escaping
	var buf [64]byte
	b := append(buf[:0], `{"value":"`...)
	b = a.AppendTo(b)
	b = append(b, `"}`...)
	return addrType(a) + "--" + uuid.NewSHA1(scoNamespace, b).String()
}

func addrType(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ipv4-addr"
	}
	return "ipv6-addr"
}

// Identity is the sensor as a STIX identity (class "system").
type Identity struct {
	Type          string `json:"type"`
	SpecVersion   string `json:"spec_version"`
	ID            string `json:"id"`
	Created       string `json:"created"`
	Modified      string `json:"modified"`
	Name          string `json:"name"`
	Description   string `json:"description,omitempty"`
	IdentityClass string `json:"identity_class"`
}

// Addr is an ipv4-addr or ipv6-addr SCO.
type Addr struct {
	Type        string `json:"type"`
	SpecVersion string `json:"spec_version"`
	ID          string `json:"id"`
	Value       string `json:"value"`
}

// NewAddr returns the SCO of a.
func NewAddr(a netip.Addr) Addr {
	a = a.Unmap()
	return Addr{Type: addrType(a), SpecVersion: SpecVersion, ID: AddrID(a), Value: a.String()}
}

// NetworkTraffic is a network-traffic SCO: the sessions of one source to one service of
// a host, aggregated over a bundle's window.
type NetworkTraffic struct {
	Type        string   `json:"type"`
	SpecVersion string   `json:"spec_version"`
	ID          string   `json:"id"`
	Start       string   `json:"start,omitempty"`
	End         string   `json:"end,omitempty"`
	SrcRef      string   `json:"src_ref"`
	DstRef      string   `json:"dst_ref,omitempty"`
	SrcPort     *int     `json:"src_port,omitempty"`
	DstPort     int      `json:"dst_port"`
	Protocols   []string `json:"protocols"`
	SrcBytes    *int64   `json:"src_byte_count,omitempty"`
	DstBytes    *int64   `json:"dst_byte_count,omitempty"`
	// icsnare's own properties (STIX 2.1 §11.1 custom properties).
	Protocol string `json:"x_icsnare_protocol,omitempty"`
	Sessions int64  `json:"x_icsnare_sessions"`
	Requests int64  `json:"x_icsnare_requests"`
	// Hosts counts the emulated hosts the source reached (aggregate = "port", which
	// leaves dst_ref out); HostsAtLeast says the count stopped at its bound.
	Hosts        int  `json:"x_icsnare_hosts,omitempty"`
	HostsAtLeast bool `json:"x_icsnare_hosts_at_least,omitempty"`
}

// idProps returns the ID contributing properties of network-traffic (start, end,
// src_ref, dst_ref, src_port, dst_port, protocols; no extensions here).
func (n *NetworkTraffic) idProps() map[string]any {
	p := map[string]any{"src_ref": n.SrcRef, "dst_port": n.DstPort, "protocols": n.Protocols}
	if n.DstRef != "" {
		p["dst_ref"] = n.DstRef
	}
	if n.Start != "" {
		p["start"] = n.Start
	}
	if n.End != "" {
		p["end"] = n.End
	}
	if n.SrcPort != nil {
		p["src_port"] = *n.SrcPort
	}
	return p
}

// setID sets the deterministic id: UUIDv5 of the canonical JSON of idProps, built
// directly in key order (dst_port, dst_ref, end, protocols, src_port, src_ref, start);
// the values are ids, timestamps, ports and protocol names, which need no escaping, and
// canonicalJSON(idProps) is the same bytes (a test checks).
func (n *NetworkTraffic) setID() {
	n.ID = "network-traffic--" + uuid.NewSHA1(scoNamespace, n.canonicalIDProps()).String()
}

func (n *NetworkTraffic) canonicalIDProps() []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"dst_port":`...)
	b = strconv.AppendInt(b, int64(n.DstPort), 10)
	if n.DstRef != "" {
		b = append(b, `,"dst_ref":"`...)
		b = append(b, n.DstRef...)
		b = append(b, '"')
	}
	if n.End != "" {
		b = append(b, `,"end":"`...)
		b = append(b, n.End...)
		b = append(b, '"')
	}
	b = append(b, `,"protocols":[`...)
	for i, p := range n.Protocols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, p...)
		b = append(b, '"')
	}
	b = append(b, ']')
	if n.SrcPort != nil {
		b = append(b, `,"src_port":`...)
		b = strconv.AppendInt(b, int64(*n.SrcPort), 10)
	}
	b = append(b, `,"src_ref":"`...)
	b = append(b, n.SrcRef...)
	b = append(b, '"')
	if n.Start != "" {
		b = append(b, `,"start":"`...)
		b = append(b, n.Start...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// ObservedData is an observed-data SDO referring to SCOs in the same bundle.
type ObservedData struct {
	Type           string   `json:"type"`
	SpecVersion    string   `json:"spec_version"`
	ID             string   `json:"id"`
	CreatedByRef   string   `json:"created_by_ref"`
	Created        string   `json:"created"`
	Modified       string   `json:"modified"`
	FirstObserved  string   `json:"first_observed"`
	LastObserved   string   `json:"last_observed"`
	NumberObserved int64    `json:"number_observed"`
	ObjectRefs     []string `json:"object_refs"`
}

// KillChainPhase is a phase of a kill chain (here MITRE ATT&CK for ICS tactics).
type KillChainPhase struct {
	KillChainName string `json:"kill_chain_name"`
	PhaseName     string `json:"phase_name"`
}

// Indicator is an indicator SDO: a source address that wrote to or changed the state of
// an emulated device.
type Indicator struct {
	Type            string           `json:"type"`
	SpecVersion     string           `json:"spec_version"`
	ID              string           `json:"id"`
	CreatedByRef    string           `json:"created_by_ref"`
	Created         string           `json:"created"`
	Modified        string           `json:"modified"`
	Name            string           `json:"name"`
	Description     string           `json:"description,omitempty"`
	IndicatorTypes  []string         `json:"indicator_types"`
	Pattern         string           `json:"pattern"`
	PatternType     string           `json:"pattern_type"`
	PatternVersion  string           `json:"pattern_version"`
	ValidFrom       string           `json:"valid_from"`
	ValidUntil      string           `json:"valid_until,omitempty"`
	KillChainPhases []KillChainPhase `json:"kill_chain_phases,omitempty"`
	Labels          []string         `json:"labels,omitempty"`
}

// Sighting is a sighting SRO: the sensor saw an indicator's source act again.
type Sighting struct {
	Type             string   `json:"type"`
	SpecVersion      string   `json:"spec_version"`
	ID               string   `json:"id"`
	CreatedByRef     string   `json:"created_by_ref"`
	Created          string   `json:"created"`
	Modified         string   `json:"modified"`
	Description      string   `json:"description,omitempty"`
	FirstSeen        string   `json:"first_seen"`
	LastSeen         string   `json:"last_seen"`
	Count            int64    `json:"count"`
	SightingOfRef    string   `json:"sighting_of_ref"`
	ObservedDataRefs []string `json:"observed_data_refs,omitempty"`
	WhereSightedRefs []string `json:"where_sighted_refs"`
}

// Bundle is a STIX bundle: its objects, each already encoded.
type Bundle struct {
	ID      string
	Objects []json.RawMessage
}

// MarshalJSON encodes the bundle ({"type":"bundle","id":…,"objects":[…]}).
func (b *Bundle) MarshalJSON() ([]byte, error) {
	out := append([]byte(`{"type":"bundle","id":`), mustJSON(b.ID)...)
	out = append(out, `,"objects":[`...)
	for i, o := range b.Objects {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, o...)
	}
	return append(out, "]}"...), nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("stix: encoding an object: " + err.Error()) // our own types always encode
	}
	return b
}
