package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

func hx(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestENIPBuilders(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"ListIdentity", encapFrame(encapListIdentity, 0, 0x0102, nil),
			"6300 0000 00000000 00000000 0201000000000000 00000000"},
		{"RegisterSession", registerSession(),
			"6500 0400 00000000 00000000 0000000000000000 00000000 0100 0000"},
		// SendRRData: handle 0, timeout 0, 2 items: null address, unconnected data of
		// Read Tag (0x4C), path 4 words: 0x91 5 "SCADA" pad, 1 element.
		{"ReadTag odd name", readTagRequest(0x11223344, 7, "SCADA"),
			"6f00 1c00 44332211 00000000 0700000000000000 00000000" +
				"00000000 0000 0200 0000 0000 b200 0c00 4c 04 9105 5343414441 00 0100"},
		{"ReadTag even name", readTagRequest(1, 1, "Level1"),
			"6f00 1c00 01000000 00000000 0100000000000000 00000000" +
				"00000000 0000 0200 0000 0000 b200 0c00 4c 04 9106 4c6576656c31 0100"},
	}
	for _, c := range cases {
		if want := hx(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, c.got, want)
		}
	}
}

// readTagReply builds a SendRRData reply around a CIP reply.
func readTagReply(session uint32, ctx uint64, cip []byte) []byte {
	d := make([]byte, 16)
	binary.LittleEndian.PutUint16(d[6:], 2)
	binary.LittleEndian.PutUint16(d[12:], 0x00B2)
	binary.LittleEndian.PutUint16(d[14:], uint16(len(cip)))
	return encapFrame(encapSendRRData, session, ctx, append(d, cip...))
}

func TestParseReadTagReply(t *testing.T) {
	withStatus := func(b []byte, st uint32) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(b[8:], st)
		return b
	}
	good := readTagReply(9, 3, []byte{0xCC, 0, 0, 0, 0xC2, 0, 100})
	cases := []struct {
		name    string
		b       []byte
		typ     uint16
		val     []byte
		wantErr string
	}{
		{"SINT 100", good, 0xC2, []byte{100}, ""},
		{"REAL", readTagReply(9, 3, []byte{0xCC, 0, 0, 0, 0xCA, 0, 0, 0, 0x60, 0x40}), 0xCA, []byte{0, 0, 0x60, 0x40}, ""},
		{"extended status skipped", readTagReply(9, 3, []byte{0xCC, 0, 0, 1, 0, 0, 0xC3, 0, 1, 2}), 0xC3, []byte{1, 2}, ""},
		{"unknown tag", readTagReply(9, 3, []byte{0xCC, 0, 0x04, 0}), 0, nil, "general status 0x04"},
		{"wrong service", readTagReply(9, 3, []byte{0xCD, 0, 0, 0, 0xC2, 0, 1}), 0, nil, "service 0xcd"},
		{"other session", readTagReply(8, 3, []byte{0xCC, 0, 0, 0, 0xC2, 0, 1}), 0, nil, "header"},
		{"other context", readTagReply(9, 4, []byte{0xCC, 0, 0, 0, 0xC2, 0, 1}), 0, nil, "header"},
		{"encapsulation status", withStatus(good, 0x64), 0, nil, "header"},
		{"truncated", good[:len(good)-3], 0, nil, "header"},
		{"no type", readTagReply(9, 3, []byte{0xCC, 0, 0, 0}), 0, nil, "without a type"},
		{"short", good[:10], 0, nil, "short header"},
	}
	for _, c := range cases {
		typ, val, err := parseReadTagReply(c.b, 9, 3)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || typ != c.typ || !bytes.Equal(val, c.val) {
			t.Errorf("%s: %#x % x %v", c.name, typ, val, err)
		}
	}
}

func TestCheckListIdentity(t *testing.T) {
	item := make([]byte, 2+33)
	binary.LittleEndian.PutUint16(item, 1) // protocol version
	ident := func(count, typ, n int, body []byte) []byte {
		d := binary.LittleEndian.AppendUint16(nil, uint16(count))
		d = binary.LittleEndian.AppendUint16(d, uint16(typ))
		d = binary.LittleEndian.AppendUint16(d, uint16(n))
		return encapFrame(encapListIdentity, 0, 5, append(d, body...))
	}
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"identity item", ident(1, 0x0C, len(item), item), true},
		{"no items", ident(0, 0x0C, len(item), item), false},
		{"other item", ident(1, 0x86, len(item), item), false},
		{"lying length", ident(1, 0x0C, len(item)+1, item), false},
		{"too short for an identity", ident(1, 0x0C, 4, item[:4]), false},
		{"other command", encapFrame(encapRegisterSession, 0, 5, nil), false},
		{"other context", encapFrame(encapListIdentity, 0, 6, nil), false},
	}
	for _, c := range cases {
		if err := checkListIdentity(c.b, 5); (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestIECBuilders(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"STARTDT act", uFrame(iecStartDTAct), "680407000000"},
		{"STOPDT act", uFrame(iecStopDTAct), "680413000000"},
		{"TESTFR con", uFrame(iecTestFRCon), "680483000000"},
		{"S-frame 5", sFrame(5), "680401000a00"},
		{"S-frame 32767", sFrame(0x7fff), "68040100feff"},
		{"GI broadcast", giFrame(0, 0, 0xFFFF), "680e 00000000 64 01 0600 ffff 000000 14"},
		{"GI 7720, N(S)=200 N(R)=300", giFrame(200, 300, 7720), "680e 9001 5802 64 01 0600 281e 000000 14"},
	}
	for _, c := range cases {
		if want := hx(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, c.got, want)
		}
	}
}

func TestParseAPDU(t *testing.T) {
	cases := []struct {
		name string
		b    string
		want apdu
		ok   bool
	}{
		{"STARTDT con", "68040b000000", apdu{format: 'U', fn: iecStartDTCon}, true},
		{"TESTFR act", "680443000000", apdu{format: 'U', fn: iecTestFRAct}, true},
		{"S-frame", "68040100feff", apdu{format: 'S', nr: 0x7fff}, true},
		{"act con", "680e 0200 0400 64 01 0700 281e 000000 14", apdu{format: 'I', ns: 1, nr: 2, typ: 100, cot: 7, objects: 1}, true},
		{"act term", "680e 0400 0400 64 01 0a00 281e 000000 14", apdu{format: 'I', ns: 2, nr: 2, typ: 100, cot: 10, objects: 1}, true},
		{"negative con", "680e 0000 0000 64 01 4700 281e 000000 14", apdu{format: 'I', typ: 100, cot: 7, negative: true, objects: 1}, true},
		{"single points, cause 20", "680f 0600 0200 01 82 1400 281e 000d14 00 01", apdu{format: 'I', ns: 3, nr: 1, typ: 1, cot: 20, objects: 2}, true},
		{"bad start", "670407000000", apdu{}, false},
		{"length disagrees", "680507000000", apdu{}, false},
		{"long U-frame", "68050b00000000", apdu{}, false},
		{"I-frame without ASDU", "680600000000ff64", apdu{}, false},
		{"too short", "6804", apdu{}, false},
	}
	for _, c := range cases {
		a, err := parseAPDU(hx(t, c.b))
		if (err == nil) != c.ok || (c.ok && a != c.want) {
			t.Errorf("%s: %+v %v, want %+v ok=%v", c.name, a, err, c.want, c.ok)
		}
	}
}

func TestIPMIMessage(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		// rsAddr 20, netfn chassis, checksum e0; rqAddr 81, seq 1, Get Chassis Status, checksum.
		{"Get Chassis Status", ipmiRequest(0x00, 0x01, 1, nil), "2000e0 810401 7a"},
		{"Close Session", ipmiRequest(0x06, 0x3C, 0x3f, le32(0x04030201)), "2018c8 81fc3c 01020304 3d"},
		{"Open Session Request", openSessionRequest(7, 0xa0b0c0d0),
			"07040000 d0c0b0a0 0000000801000000 0100000801000000 0200000801000000"},
	}
	for _, c := range cases {
		if want := hx(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, c.got, want)
		}
	}
	resp := []byte{0x81, 0x04, 0x7b, 0x20, 0x04, 0x01, 0x00, 0x01, 0x00, 0x40}
	resp = append(resp, ipmiChecksum(resp[3:]))
	pcases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"chassis status", resp, true},
		{"bad header checksum", append([]byte{0x81, 0x04, 0x7c}, resp[3:]...), false},
		{"bad data checksum", append(append([]byte(nil), resp[:len(resp)-1]...), 0), false},
		{"short", resp[:7], false},
	}
	for _, c := range pcases {
		cc, d, err := parseIPMIResponse(c.b, 0x00, 0x01, 1)
		if (err == nil) != c.ok || (c.ok && (cc != 0 || !bytes.Equal(d, []byte{0x01, 0x00, 0x40}))) {
			t.Errorf("%s: cc %#x data % x err %v", c.name, cc, d, err)
		}
	}
	if _, _, err := parseIPMIResponse(resp, 0x00, 0x01, 2); err == nil {
		t.Error("a response to another sequence number was accepted")
	}
}

// TestRMCPPlusFraming checks the session wrapper over payload lengths that need every
// integrity pad length: it parses back, the covered part is a multiple of 4 octets, and a
// changed octet or a wrong key is refused.
func TestRMCPPlusFraming(t *testing.T) {
	k1 := bytes.Repeat([]byte{0x11}, 20)
	k2 := bytes.Repeat([]byte{0x22}, 20)
	for n := 0; n < 40; n++ {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		for _, keys := range [][2][]byte{{nil, nil}, {k1, nil}, {k1, k2}} {
			b, err := rmcpPlusPacket(payloadIPMI, 0x01020304, uint32(n+1), payload, keys[0], keys[1])
			if err != nil {
				t.Fatal(err)
			}
			if keys[0] != nil && (len(b)-4-12)%4 != 0 {
				t.Fatalf("n=%d: integrity data of %d octets", n, len(b)-4-12)
			}
			r, err := parseRMCPPlus(b, keys[0], keys[1])
			if err != nil || r.sid != 0x01020304 || r.seq != uint32(n+1) || r.ptype != payloadIPMI || !bytes.Equal(r.payload, payload) {
				t.Fatalf("n=%d keys=%v: %+v %v", n, keys[0] != nil, r, err)
			}
			if keys[0] == nil {
				continue
			}
			bad := append([]byte(nil), b...)
			bad[17]++
			if _, err := parseRMCPPlus(bad, keys[0], keys[1]); err == nil {
				t.Fatalf("n=%d: a changed octet passed the integrity check", n)
			}
			if _, err := parseRMCPPlus(b, k2, keys[1]); err == nil {
				t.Fatalf("n=%d: the wrong K1 passed", n)
			}
		}
	}
	if _, err := aesDecrypt(k2, make([]byte, 17)); err == nil {
		t.Error("a payload that is not whole blocks was decrypted")
	}
}

func TestParseOpenSessionResponse(t *testing.T) {
	ok := hx(t, "07000400 d0c0b0a0 44332211 0000000801000000 0100000801000000 0200000801000000")
	with := func(i int, v byte) []byte { b := append([]byte(nil), ok...); b[i] = v; return b }
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"suite 3", ok, true},
		{"refused", with(1, 0x01), false},
		{"other tag", with(0, 8), false},
		{"other console id", with(4, 0), false},
		{"SHA256 chosen", with(16, 3), false},
		{"no confidentiality", with(32, 0), false},
		{"short", ok[:20], false},
	}
	for _, c := range cases {
		id, err := parseOpenSessionResponse(c.b, 7, 0xa0b0c0d0)
		if (err == nil) != c.ok || (c.ok && id != 0x11223344) {
			t.Errorf("%s: %#x %v", c.name, id, err)
		}
	}
}
