package bacnet

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// testService configures the bacnet section of a template directory under testdata.
func testService(t testing.TB, dir string) (*service, *protocols.Host) {
	t.Helper()
	p := protocoltest.Profile(t, "testdata/"+dir)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	return svc, protocoltest.Host(p, netip.MustParseAddr("127.50.0.10"), 7)
}

// flow is a UDP flow to a service, with what it answered.
type flow struct {
	t    testing.TB
	sv   *service
	s    *protocols.Session
	rec  *protocoltest.Recorder
	mu   sync.Mutex
	sent [][]byte // unsolicited datagrams (retransmissions)
}

func newFlow(t testing.TB, sv *service, h *protocols.Host) *flow {
	f := &flow{t: t, sv: sv, rec: &protocoltest.Recorder{}}
	f.s = &protocols.Session{ID: "t", Protocol: Name, Transport: protocols.UDP, Host: h,
		Local: netip.AddrPortFrom(h.Addr, Port), Remote: netip.MustParseAddrPort("127.50.1.1:47808"),
		Log: slog.Default(), Events: f.rec, MaxPayload: 4096}
	f.s.Open(context.Background(), func(b []byte) error {
		f.mu.Lock()
		f.sent = append(f.sent, append([]byte(nil), b...))
		f.mu.Unlock()
		return nil
	})
	t.Cleanup(f.s.Close)
	return f
}

// ask sends one datagram and returns the answers.
func (f *flow) ask(req []byte) [][]byte {
	var out [][]byte
	f.s.Received(len(req))
	f.sv.ServePacket(context.Background(), f.s, req, func(b []byte) { out = append(out, append([]byte(nil), b...)) })
	return out
}

// ask1 sends one datagram and decodes its single answer.
func (f *flow) ask1(req []byte) message {
	f.t.Helper()
	out := f.ask(req)
	if len(out) != 1 {
		f.t.Fatalf("request %x: %d answers, want 1", req, len(out))
	}
	m, err := decodeMessage(out[0])
	if err != nil || !m.hasAPDU {
		f.t.Fatalf("answer %x: %v", out[0], err)
	}
	return m
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Client-side request builders (what a BACnet client sends).

func unicast(apduBytes []byte) []byte {
	n := append([]byte{npduVersion, 0x04}, apduBytes...)
	return append(appendBVLC(nil, bvlcOriginalUnicast, len(n)), n...)
}

func broadcastFrame(apduBytes []byte) []byte {
	n := append([]byte{npduVersion, 0x00}, apduBytes...)
	return append(appendBVLC(nil, bvlcOriginalBroadcast, len(n)), n...)
}

// confirmedReq is a confirmed request accepting segmented answers of up to 64 segments
// of maxAPDUCode (5: 1476 octets).
func confirmedReq(invoke, service byte, maxAPDUCode byte, data []byte) []byte {
	return append([]byte{pduConfirmed<<4 | flagSA, 0x60 | maxAPDUCode, invoke, service}, data...)
}

func rpData(o objectID, prop uint32, idx int64) []byte {
	b := appendCtxObjectID(nil, 0, o)
	b = appendCtxUnsigned(b, 1, prop)
	if idx >= 0 {
		b = appendCtxUnsigned(b, 2, uint32(idx))
	}
	return b
}

func rpmData(specs map[objectID][]uint32, order []objectID) []byte {
	var b []byte
	for _, o := range order {
		b = appendCtxObjectID(b, 0, o)
		b = appendOpen(b, 1)
		for _, p := range specs[o] {
			b = appendCtxUnsigned(b, 0, p)
		}
		b = appendClose(b, 1)
	}
	return b
}

func wpData(o objectID, prop uint32, value []byte, priority uint32) []byte {
	b := appendCtxObjectID(nil, 0, o)
	b = appendCtxUnsigned(b, 1, prop)
	b = appendOpen(b, 3)
	b = append(b, value...)
	b = appendClose(b, 3)
	if priority > 0 {
		b = appendCtxUnsigned(b, 4, priority)
	}
	return b
}

func whoIs(low, high int64) []byte {
	b := []byte{pduUnconfirmed << 4, svcWhoIs}
	if low >= 0 {
		b = appendCtxUnsigned(b, 0, uint32(low))
		b = appendCtxUnsigned(b, 1, uint32(high))
	}
	return b
}

// readValue sends a ReadProperty and returns the application values of the answer.
func (f *flow) readValue(o objectID, prop uint32, idx int64) ([]appValue, message) {
	f.t.Helper()
	m := f.ask1(unicast(confirmedReq(1, svcReadProperty, 5, rpData(o, prop, idx))))
	if m.apdu.typ != pduComplexACK {
		return nil, m
	}
	r := reader{b: m.apdu.data}
	if _, err := r.ctxObjectID(0); err != nil {
		f.t.Fatal(err)
	}
	if _, err := r.ctxUnsigned(1); err != nil {
		f.t.Fatal(err)
	}
	r.optCtxUnsigned(2)
	if err := r.expectOpen(3); err != nil {
		f.t.Fatal(err)
	}
	raw, err := r.enclosed(3)
	if err != nil {
		f.t.Fatal(err)
	}
	vals, err := decodeValues(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	return vals, m
}

// readOne reads a property holding a single value.
func (f *flow) readOne(o objectID, prop uint32) appValue {
	f.t.Helper()
	vals, m := f.readValue(o, prop, -1)
	if len(vals) != 1 {
		f.t.Fatalf("%s property %d: %d values (answer type %d, error %d/%d)", o, prop, len(vals), m.apdu.typ, m.apdu.errorClass, m.apdu.errorCode)
	}
	return vals[0]
}

var (
	testDevice = objectID{typ: objDevice, inst: wildcardInstance}
)

func testHost(p *profiles.Profile) *protocols.Host {
	return protocoltest.Host(p, netip.MustParseAddr("127.50.0.11"), 11)
}
