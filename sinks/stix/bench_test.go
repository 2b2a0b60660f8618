package stix

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// BenchmarkExporter measures a scan: sessions of one connect, one Modbus read and one
// disconnect, from 256 sources each to its own hosts of a prefix, with either
// aggregation; it reports the cost per event and the bundle bytes per session.
func BenchmarkExporter(b *testing.B) {
	for _, agg := range []string{AggregateHost, AggregatePort} {
		b.Run(agg, func(b *testing.B) {
			o := DefaultOptions()
			o.Aggregate = agg
			benchmarkExporter(b, o)
		})
	}
}

func benchmarkExporter(b *testing.B, o Options) {
	x := NewExporter(o, testIdentity())
	evs := make([]protocols.Event, 3)
	var bytes, sessions int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		sid := strconv.Itoa(i)
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 40000)
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, byte(i >> 16), byte(i >> 8), byte(i)}), 502)
		at := t0.Add(time.Duration(i) * time.Millisecond)
		evs[0] = protocols.Event{Time: at, Type: "connect", Phase: protocols.PhaseStart, SessionID: sid, Protocol: "modbus", Transport: "tcp", Src: src, Dst: dst, Start: at}
		evs[1] = protocols.Event{Time: at, Type: "modbus.request", SessionID: sid, Protocol: "modbus", Transport: "tcp", Src: src, Dst: dst, Start: at,
			Fields: []protocols.Field{protocols.F("unit_id", uint8(1)), protocols.F("function_code", uint8(3))}}
		evs[2] = protocols.Event{Time: at, Type: "disconnect", Phase: protocols.PhaseEnd, SessionID: sid, Protocol: "modbus", Transport: "tcp", Src: src, Dst: dst, Start: at,
			Fields: []protocols.Field{protocols.F("requests", int64(1)), protocols.F("bytes_in", int64(12)), protocols.F("bytes_out", int64(11))}}
		for j := range evs {
			for _, bd := range x.Add(&evs[j], at) {
				raw, _ := bd.MarshalJSON()
				bytes += int64(len(raw))
			}
		}
		sessions++
	}
	for _, bd := range x.Close(t0) {
		raw, _ := bd.MarshalJSON()
		bytes += int64(len(raw))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(3*b.N), "ns/event")
	b.ReportMetric(float64(bytes)/float64(sessions), "bytes/session")
}
