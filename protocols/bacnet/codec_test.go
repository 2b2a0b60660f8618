package bacnet

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestTagRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  []byte
		want appValue
	}{
		{"null", appendNull(nil), appValue{tag: tagNull}},
		{"true", appendBoolean(nil, true), appValue{tag: tagBoolean, b: true}},
		{"false", appendBoolean(nil, false), appValue{tag: tagBoolean}},
		{"unsigned 1 octet", appendUnsigned(nil, 200), appValue{tag: tagUnsigned, u: 200}},
		{"unsigned 3 octets", appendUnsigned(nil, 0x123456), appValue{tag: tagUnsigned, u: 0x123456}},
		{"unsigned 4 octets", appendUnsigned(nil, 0xFFFFFFFF), appValue{tag: tagUnsigned, u: 0xFFFFFFFF}},
		{"signed -1", appendSigned(nil, -1), appValue{tag: tagSigned, i: -1}},
		{"signed -300", appendSigned(nil, -300), appValue{tag: tagSigned, i: -300}},
		{"signed big", appendSigned(nil, -1<<30), appValue{tag: tagSigned, i: -1 << 30}},
		{"real", appendReal(nil, 68), appValue{tag: tagReal, f: 68}},
		{"double", appendDouble(nil, 1.5), appValue{tag: tagDouble, f: 1.5}},
		{"enumerated", appendEnumerated(nil, 62), appValue{tag: tagEnumerated, u: 62}},
		{"character string", appendCharString(nil, "Door 01"), appValue{tag: tagCharString, s: "Door 01"}},
		{"long character string", appendCharString(nil, string(bytes.Repeat([]byte("x"), 300))), appValue{tag: tagCharString, s: string(bytes.Repeat([]byte("x"), 300))}},
		{"octet string", appendOctetString(nil, []byte{1, 2, 3, 4, 5}), appValue{tag: tagOctetString, s: "\x01\x02\x03\x04\x05"}},
		{"object identifier", appendObjectID(nil, objectID{objDevice, 36113}), appValue{tag: tagObjectID, oid: objectID{objDevice, 36113}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, n, err := decodeTag(tc.enc)
			if err != nil || n != len(tc.enc) {
				t.Fatalf("decodeTag(%x) = %d, %v", tc.enc, n, err)
			}
			v, err := decodeApp(tg)
			if err != nil {
				t.Fatal(err)
			}
			if v.tag != tc.want.tag || v.u != tc.want.u || v.i != tc.want.i || v.f != tc.want.f || v.b != tc.want.b || v.s != tc.want.s || v.oid != tc.want.oid {
				t.Fatalf("decoded %+v, want %+v", v, tc.want)
			}
			if tc.want.tag != tagDouble && tc.want.tag != tagOctetString && !bytes.Equal(encodeApp(v), tc.enc) {
				t.Fatalf("re-encoded %x, want %x", encodeApp(v), tc.enc)
			}
		})
	}
}

func TestTagKnownEncodings(t *testing.T) {
	// Encodings from ASHRAE 135 clause 20.2 examples and real captures.
	for _, tc := range []struct {
		got  []byte
		want string
	}{
		{appendUnsigned(nil, 72), "2148"},
		{appendSigned(nil, 72), "3148"},
		{appendReal(nil, 72), "4442900000"},
		{appendCharString(nil, "This is a BACnet string!"), "751900546869732069732061204241436e657420737472696e6721"},
		{appendEnumerated(nil, 0), "9100"},
		{appendDate(nil, 1991, 1, 24, 4), "a45b011804"},
		{appendTime(nil, 17, 35, 45, 17), "b411232d11"},
		{appendObjectID(nil, objectID{objBinaryInput, 15}), "c400c0000f"},
		{appendCtxObjectID(nil, 0, objectID{objDevice, wildcardInstance}), "0c023fffff"},
		{appendCtxUnsigned(nil, 1, 0x4b), "194b"},
		{appendOpen(nil, 3), "3e"},
		{appendClose(nil, 3), "3f"},
		{appendOpen(nil, 20), "fe14"},
		{appendBitString(nil, 4, func(i int) bool { return i == 3 }), "820410"},
		{appendTagHeader(nil, 20, true, 1), "f914"},
	} {
		if w := unhexT(tc.want); !bytes.Equal(tc.got, w) {
			t.Errorf("encoded %x, want %s", tc.got, tc.want)
		}
	}
}

func unhexT(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b
}

func TestTagDecodeHostile(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"extended tag number cut", "f8"},
		{"length beyond datagram", "2402"},
		{"extended length cut", "25"},
		{"two-octet length cut", "25fe00"},
		{"four-octet length beyond datagram", "25ff7fffffff00"},
		{"application boolean with length 2", "12"},
		{"application opening tag", "06"},
	} {
		if _, _, err := decodeTag(unhexT(tc.in)); err == nil {
			t.Errorf("%s: decodeTag(%s) succeeded", tc.name, tc.in)
		}
	}
	// Deep nesting in a written value is refused, not recursed into.
	var deep []byte
	for range 100 {
		deep = appendOpen(deep, 0)
	}
	for range 100 {
		deep = appendClose(deep, 0)
	}
	if _, err := decodeValues(deep); !errors.Is(err, errTooDeep) {
		t.Fatalf("deep nesting: %v, want errTooDeep", err)
	}
	r := reader{b: append(deep, 0x3f)}
	if _, err := r.enclosed(3); err == nil {
		t.Fatal("enclosed accepted deep nesting")
	}
	for _, in := range []string{"3e", "0e1f", "44000000"} {
		if _, err := decodeValues(unhexT(in)); err == nil {
			t.Errorf("decodeValues(%s) succeeded", in)
		}
	}
}

func TestBVLCAndNPDU(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		err     error
		fn      byte
		hasAPDU bool
		check   func(t *testing.T, m message)
	}{
		{name: "nmap read property", in: "810a001101040005010c0c023fffff194b", fn: bvlcOriginalUnicast, hasAPDU: true,
			check: func(t *testing.T, m message) {
				a := m.apdu
				if a.typ != pduConfirmed || a.service != svcReadProperty || a.invokeID != 1 || a.maxAPDU != 1476 || a.maxSegs != 0 {
					t.Fatalf("apdu %+v", a)
				}
				if m.npdu.control != npduExpectReply || m.npdu.hasDNET || m.npdu.hasSNET {
					t.Fatalf("npdu %+v", m.npdu)
				}
			}},
		{name: "global who-is", in: "810b000c0120ffff00ff1008", fn: bvlcOriginalBroadcast, hasAPDU: true,
			check: func(t *testing.T, m message) {
				if !m.npdu.hasDNET || m.npdu.dnet != globalNetwork || m.npdu.hops != 0xff || !m.npdu.forUs() {
					t.Fatalf("npdu %+v", m.npdu)
				}
			}},
		{name: "routed request with SNET/SADR", in: "810a0017010c000503aabbcc0005010c0c023fffff194b", fn: bvlcOriginalUnicast, hasAPDU: true,
			check: func(t *testing.T, m message) {
				if !m.npdu.hasSNET || m.npdu.snet != 5 || !bytes.Equal(m.npdu.sadr, []byte{0xaa, 0xbb, 0xcc}) {
					t.Fatalf("npdu %+v", m.npdu)
				}
				got := appendReplyNPDU(nil, &m.npdu)
				if want := unhexT("012000050" + "3aabbccff"); !bytes.Equal(got, want) {
					t.Fatalf("reply NPDU %x, want %x", got, want)
				}
			}},
		{name: "remote DNET", in: "810a000e01240007020102ff1008", fn: bvlcOriginalUnicast, hasAPDU: true,
			check: func(t *testing.T, m message) {
				if m.npdu.forUs() || m.npdu.dnet != 7 || m.npdu.hops != 0xff {
					t.Fatalf("npdu %+v", m.npdu)
				}
			}},
		{name: "who-is-router-to-network", in: "810b0007018000", fn: bvlcOriginalBroadcast,
			check: func(t *testing.T, m message) {
				if !m.npdu.networkMessage() || m.npdu.msgType != 0 {
					t.Fatalf("npdu %+v", m.npdu)
				}
			}},
		{name: "proprietary network message", in: "810a000901808001ff", fn: bvlcOriginalUnicast,
			check: func(t *testing.T, m message) {
				if m.npdu.vendorID != 0x01ff || m.npdu.msgType != 0x80 {
					t.Fatalf("npdu %+v", m.npdu)
				}
			}},
		{name: "forwarded NPDU", in: "81040012c0a80001bac001001008", fn: bvlcForwardedNPDU, err: errBVLCLen},
		{name: "forwarded NPDU ok", in: "8104000ec0a80001bac001001008", fn: bvlcForwardedNPDU, hasAPDU: true,
			check: func(t *testing.T, m message) {
				if m.bvlc.origin != [6]byte{192, 168, 0, 1, 0xba, 0xc0} || m.apdu.service != svcWhoIs {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "register foreign device", in: "81050006003c", fn: bvlcRegisterFD},
		{name: "not BVLC", in: "0c023fffff", err: errNotBVLC},
		{name: "length mismatch", in: "810a00ff01001008", err: errBVLCLen},
		{name: "NPDU version 2", in: "810a000802001008", err: errNPDUVer},
		{name: "SNET with zero length", in: "810a000b01080005001008", err: errNPDU},
		{name: "APDU type 8", in: "810a00070100" + "80", err: errAPDU},
		{name: "confirmed truncated", in: "810a0008010400" + "05", err: errAPDU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeMessage(unhexT(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.bvlc.function != tc.fn || m.hasAPDU != tc.hasAPDU {
				t.Fatalf("function %#x hasAPDU %v", m.bvlc.function, m.hasAPDU)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestAPDUTypes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want apdu
	}{
		{"simple ack", appendSimpleACK(nil, 7, svcWriteProperty), apdu{typ: pduSimpleACK, invokeID: 7, service: svcWriteProperty}},
		{"complex ack", appendComplexACKHeader(nil, 8, svcReadProperty), apdu{typ: pduComplexACK, invokeID: 8, service: svcReadProperty}},
		{"segmented complex ack", appendSegmentedACKHeader(nil, 9, svcReadProperty, 3, 16, true), apdu{typ: pduComplexACK, flags: flagSEG | flagMOR, invokeID: 9, seq: 3, window: 16, service: svcReadProperty}},
		{"segment ack", appendSegmentACK(nil, 9, 3, 4, true), apdu{typ: pduSegmentACK, flags: flagNAK | flagSRV, invokeID: 9, seq: 3, window: 4}},
		{"error", appendErrorPDU(nil, 1, svcReadProperty, errClassObject, errCodeUnknownObject), apdu{typ: pduError, invokeID: 1, service: svcReadProperty, errorClass: errClassObject, errorCode: errCodeUnknownObject}},
		{"reject", appendReject(nil, 2, rejectUnrecognizedService), apdu{typ: pduReject, invokeID: 2, reason: rejectUnrecognizedService}},
		{"abort", appendAbort(nil, 3, abortSegmentationNotSupport), apdu{typ: pduAbort, flags: flagSRV, invokeID: 3, reason: abortSegmentationNotSupport}},
		{"segmented confirmed request", []byte{0x0a, 0x45, 4, 0, 8, svcWriteProperty, 0x0c}, apdu{typ: pduConfirmed, flags: flagSEG | flagSA, maxSegs: 16, maxAPDU: 1476, invokeID: 4, window: 8, service: svcWriteProperty}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := decodeAPDU(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			a.data = nil
			if !reflect.DeepEqual(a, tc.want) {
				t.Fatalf("decoded %+v, want %+v", a, tc.want)
			}
		})
	}
}
