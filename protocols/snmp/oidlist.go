package snmp

import (
	"encoding/binary"
	"fmt"
)

// oidList is an event's "oids" field: the OIDs of a request's first maxEventOIDs varbinds,
// kept as one copy of their BER contents and written in dotted form only when the event is
// encoded (off the request's path); an OID that does not decode shows as "?".
type oidList struct {
	raw []byte // per OID: its content length (2 bytes, big endian), then the content
}

// newOIDList copies the OIDs of vbs (at most maxEventOIDs).
func newOIDList(vbs []varbind) oidList {
	vbs = vbs[:min(len(vbs), maxEventOIDs)]
	n := 0
	for _, vb := range vbs {
		n += 2 + min(len(vb.oid), 0xFFFF)
	}
	raw := make([]byte, 0, n)
	for _, vb := range vbs {
		c := vb.oid[:min(len(vb.oid), 0xFFFF)]
		raw = binary.BigEndian.AppendUint16(raw, uint16(len(c)))
		raw = append(raw, c...)
	}
	return oidList{raw: raw}
}

// each calls f with each OID's content.
func (l oidList) each(f func(c []byte)) {
	for r := l.raw; len(r) >= 2; {
		n := int(binary.BigEndian.Uint16(r))
		r = r[2:]
		n = min(n, len(r))
		f(r[:n])
		r = r[n:]
	}
}

// appendDottedOID appends content c in dotted form, or "?" when it does not decode.
func appendDottedOID(b, c []byte) []byte {
	var sub [64]uint32
	oid, err := decodeOID(c, sub[:0])
	if err != nil {
		return append(b, '?')
	}
	for i, s := range oid {
		if i > 0 {
			b = append(b, '.')
		}
		b = appendUintDec(b, uint64(s))
	}
	return b
}

// AppendJSON implements protocols.JSONAppender: a list of strings.
func (l oidList) AppendJSON(b []byte) []byte {
	b = append(b, '[')
	first := true
	l.each(func(c []byte) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(appendDottedOID(append(b, '"'), c), '"') // digits and dots: nothing to escape
	})
	return append(b, ']')
}

// MarshalJSON implements json.Marshaler.
func (l oidList) MarshalJSON() ([]byte, error) { return l.AppendJSON(nil), nil }

// Strings returns the OIDs in dotted form.
func (l oidList) Strings() []string {
	var out []string
	l.each(func(c []byte) { out = append(out, string(appendDottedOID(nil, c))) })
	return out
}

// String formats the list as fmt formats a []string.
func (l oidList) String() string { return fmt.Sprint(l.Strings()) }
