package bacnet

import (
	"bytes"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// seedRequests are real-format requests (the ones the tests and real clients send).
func seedRequests() [][]byte {
	dev := objectID{objDevice, wildcardInstance}
	s := [][]byte{
		unhexT("810a001101040005010c0c023fffff194b"), // nmap bacnet-info
		unhexT("810b000c0120ffff00ff1008"),           // global Who-Is
		unhexT("810a0017010c000503aabbcc0005010c0c023fffff194b"),
		unhexT("810b0007018000"),
		unhexT("8104000ec0a80001bac001001008"),
		unhexT("81050006003c"),
		unicast(whoIs(0, 4194303)),
		unicast(confirmedReq(1, svcReadProperty, 5, rpData(dev, propObjectList, 0))),
		unicast(confirmedReq(2, svcReadPropertyMultiple, 5, rpmData(map[objectID][]uint32{dev: {propAll, propRequired}}, []objectID{dev}))),
		unicast(confirmedReq(3, svcWriteProperty, 5, wpData(objectID{objAnalogValue, 2}, propPresentValue, appendReal(nil, 1), 8))),
		unicast(confirmedReq(4, svcDeviceCommControl, 5, appendCtxUnsigned(nil, 1, 1))),
		unicast(appendSegmentACK(nil, 4, 0, 16, false)),
		unicast([]byte{0x0e, 0x05, 4, 0, 127, svcWriteProperty, 0x0c}),
		unicast(appendTime(appendDate([]byte{0x10, svcTimeSynchronization}, 2030, 1, 2, 3), 1, 2, 3, 4)),
		covReq(5, 7, objectID{objAnalogInput, 1}, 1, 300),
		covReq(6, 7, objectID{objAnalogInput, 1}, -1, -1),
		dccReq(7, 5, dccDisable, "Hvac!2024"),
		reinitReq(8, reinitWarmstart, "Hvac!2024"),
	}
	return s
}

// FuzzDecodeMessage decodes BVLC, NPDU and APDU; whatever decodes re-frames consistently.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range seedRequests() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil || !m.hasAPDU {
			return
		}
		if len(m.npdu.apdu) > len(b) || m.npdu.hasSNET && len(m.npdu.sadr) == 0 {
			t.Fatalf("inconsistent NPDU %+v", m.npdu)
		}
		out := frame(&m.npdu, m.npdu.apdu)
		back, err := decodeMessage(out)
		if err != nil || !bytes.Equal(back.npdu.apdu, m.npdu.apdu) {
			t.Fatalf("re-framed %x does not decode back: %v", out, err)
		}
	})
}

// FuzzTags decodes tags, values and constructed values without panicking or running past
// the input.
func FuzzTags(f *testing.F) {
	f.Add(appendCharString(nil, "Door 01"))
	f.Add(wpData(objectID{objAnalogValue, 2}, propPresentValue, appendReal(nil, 1), 8))
	f.Add(rpmData(map[objectID][]uint32{{objDevice, 1}: {propAll}}, []objectID{{objDevice, 1}}))
	f.Add(unhexT("25ff7fffffff00"))
	f.Add(bytes.Repeat([]byte{0x0e}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		for pos := 0; pos < len(b); {
			tg, n, err := decodeTag(b[pos:])
			if err != nil {
				break
			}
			if n <= 0 || pos+n > len(b) {
				t.Fatalf("tag length %d at %d of %d", n, pos, len(b))
			}
			pos += n
			if v, err := decodeApp(tg); err == nil && (v.tag == tagCharString || v.tag == tagUnsigned) {
				enc := encodeApp(v)
				tg2, _, err := decodeTag(enc)
				if err != nil {
					t.Fatalf("re-encoded %x: %v", enc, err)
				}
				if v2, err := decodeApp(tg2); err != nil || v2.s != v.s || v2.u != v.u {
					t.Fatalf("round trip %+v -> %+v (%v)", v, v2, err)
				}
			}
		}
		decodeValues(b)
		r := reader{b: b}
		if err := r.expectOpen(3); err == nil {
			if raw, err := r.enclosed(3); err == nil && len(raw) > len(b) {
				t.Fatal("enclosed value longer than the input")
			}
		}
	})
}

// FuzzServe feeds datagrams to the service: answers are bounded, and it never panics.
func FuzzServe(f *testing.F) {
	for _, s := range seedRequests() {
		f.Add(s)
	}
	sv, h := testService(f, "controller")
	f.Fuzz(func(t *testing.T, b []byte) {
		restarted(sv, h)
		fl := newFlow(t, sv, h)
		out := fl.ask(b)
		if len(out) > maxIHave {
			t.Fatalf("%d answers", len(out))
		}
		for _, o := range out {
			if len(o) > ourMaxAPDU+64 {
				t.Fatalf("answer of %d octets", len(o))
			}
		}
	})
}

// FuzzSegmentedFlow starts a segmented answer and then feeds the flow the fuzzed
// datagrams (split at "||"): Segment-ACKs with any sequence and window, aborts, new
// requests. The transfer state stays bounded and nothing panics.
func FuzzSegmentedFlow(f *testing.F) {
	f.Add(unicast(appendSegmentACK(nil, 9, 0, 16, false)))
	f.Add(bytes.Join([][]byte{unicast(appendSegmentACK(nil, 9, 0, 255, false)), unicast(appendSegmentACK(nil, 9, 3, 0, true)), unicast(appendAbort(nil, 9, 0))}, []byte("||")))
	f.Add(unicast(appendSegmentACK(nil, 9, 200, 1, false)))
	f.Add(bytes.Join([][]byte{segmentedReq(5, 0, true, svcWriteProperty, unhexT("0c00000001191c3e7500")), segmentedReq(5, 1, false, svcWriteProperty, unhexT("41423f"))}, []byte("||")))
	sv, h := testService(f, "controller")
	start := unicast(confirmedReq(9, svcReadPropertyMultiple, 0, rpmData(map[objectID][]uint32{testDevice: {propAll}}, []objectID{testDevice})))
	f.Fuzz(func(t *testing.T, b []byte) {
		restarted(sv, h)
		fl := newFlow(t, sv, h)
		if out := fl.ask(start); len(out) != 1 {
			t.Fatalf("first segment: %d datagrams", len(out))
		}
		for i, part := range bytes.Split(b, []byte("||")) {
			if i >= 16 {
				break
			}
			if out := fl.ask(part); len(out) > proposedWindow {
				t.Fatalf("%d datagrams for one request", len(out))
			}
		}
		ts := sv.transfers(fl.s)
		ts.mu.Lock()
		n := len(ts.m)
		ts.mu.Unlock()
		if n > maxTransfers {
			t.Fatalf("%d transfers", n)
		}
	})
}

// FuzzRestore reads whatever the state store holds for a host: bounded, never a panic.
func FuzzRestore(f *testing.F) {
	f.Add([]byte(`{"w":[{"o":12582916,"p":77,"v":"dQYAb3duZWQ="}],"p":[{"o":4194307,"s":[null,null,null,null,null,null,null,null,"REKEAAA="]}],"r":7,"c":5}`))
	f.Add([]byte(`{"p":[{"o":33554432,"s":[]}]}`))
	sv, _ := testService(f, "controller")
	f.Fuzz(func(t *testing.T, b []byte) {
		st := &hostState{instance: 77, written: map[propKey][]byte{}, priority: map[objectID]*[16][]byte{}}
		sv.restore(st, b)
		if len(st.written) > maxWrittenValues || len(st.priority) > maxWrittenValues {
			t.Fatalf("%d values, %d priority arrays", len(st.written), len(st.priority))
		}
	})
}

// restarted undoes what a DeviceCommunicationControl or ReinitializeDevice of an earlier
// input did to the shared host, so every input meets a device that answers.
func restarted(sv *service, h *protocols.Host) {
	st := sv.state(h)
	st.mu.Lock()
	st.dcc, st.dccUntil, st.restartUntil = dccEnable, time.Time{}, time.Time{}
	st.mu.Unlock()
}
