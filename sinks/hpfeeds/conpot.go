package hpfeeds

import (
	"net/netip"
	"strconv"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// AppendConpotRecord appends the payload Conpot's hpfeeds logger publishes for one of its
// documents: json.dumps of the session record (id, remote, src_ip, src_port, local, dst_ip,
// dst_port, data_type, timestamp, public_ip, data) with Python's separators and ASCII
// escapes, data holding the document's type, request and response. id is the UUID that
// stands for the session in the sensor's Conpot JSON; publicIP "" is null.
func AppendConpotRecord(b []byte, e *protocols.Event, d protocols.ConpotEvent, publicIP string) []byte {
	b = append(b, `{"id": "`...)
	b = events.AppendSessionUUID(b, e.SessionID)
	b = append(b, `", "remote": `...)
	b = appendPyPair(b, e.Src)
	b = events.AppendPyAddrPort(b, "src", e.Src)
	b = append(b, `, "local": `...)
	b = appendPyPair(b, e.Dst)
	b = events.AppendPyAddrPort(b, "dst", e.Dst)
	b = append(b, `, "data_type": `...)
	b = events.AppendPyString(b, d.DataType)
	b = append(b, `, "timestamp": "`...)
	b = events.AppendPyTime(b, e.Start, e.Time)
	b = append(b, `", "public_ip": `...)
	if publicIP == "" {
		b = append(b, "null"...)
	} else {
		b = events.AppendPyString(b, publicIP)
	}
	b = append(b, `, "data": {`...)
	sep := ""
	if d.EventType != "" {
		b = append(b, `"type": `...)
		b = events.AppendPyString(b, d.EventType)
		sep = ", "
	}
	if d.Request != nil || d.EventType == "" {
		b = append(b, sep...)
		b = append(b, `"request": `...)
		b = events.AppendPyValue(b, d.Request)
		sep = ", "
	}
	if d.Response != nil || d.EventType == "" {
		b = append(b, sep...)
		b = append(b, `"response": `...)
		b = events.AppendPyValue(b, d.Response)
	}
	return append(b, "}}"...)
}

// appendPyPair writes an address as Python's json.dumps writes a (host, port) tuple.
func appendPyPair(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, "[null, null]"...)
	}
	b = append(b, `["`...)
	b = ap.Addr().Unmap().AppendTo(b)
	b = append(b, `", `...)
	b = strconv.AppendUint(b, uint64(ap.Port()), 10)
	return append(b, ']')
}
