package iec104

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

const (
	startdt = "68 04 07 00 00 00"
	startOK = "68 04 0b 00 00 00"
)

// TestConpotExchanges replays the byte exchanges of Conpot's test_iec104_server.py
// (conpot.md §1.10) against the IEC104 template.
func TestConpotExchanges(t *testing.T) {
	_, h, srv := serve(t, 1)
	reset := func() {
		for _, k := range []string{"22_20", "13_20", "22_19"} {
			h.Databus.Set(k, int64(0))
		}
	}
	c := dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.expect("68 04 43 00 00 00", "68 04 83 00 00 00")

	// write_for_non_existing
	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.expect("68 0e 00 00 00 00 2d 01 06 00 28 1e ee ee ee 01", "68 0e 00 00 02 00 2d 01 2f 00 28 1e ee ee ee 01")

	// write_relation_for_existing: 22_20 drives single point 13_20
	reset()
	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.expect("68 0e 00 00 00 00 2d 01 06 00 28 1e 00 16 14 01",
		"68 0e 00 00 02 00 2d 01 07 00 28 1e 00 16 14 01",
		"68 0e 02 00 02 00 01 01 0b 00 28 1e 00 0d 14 01",
		"68 0e 04 00 02 00 2d 01 0a 00 28 1e 00 16 14 01")
	if v, _ := h.Databus.GetInt("13_20"); v != 1 {
		t.Fatalf("13_20 = %d after the command", v)
	}
	if v, _ := h.Databus.GetInt("22_20"); v != 1 {
		t.Fatalf("22_20 = %d after the command", v)
	}

	// write_no_relation_for_existing: 22_19
	reset()
	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.expect("68 0e 00 00 00 00 2d 01 06 00 28 1e 00 16 13 00",
		"68 0e 00 00 02 00 2d 01 07 00 28 1e 00 16 13 00",
		"68 0e 02 00 02 00 2d 01 0a 00 28 1e 00 16 13 00")

	// write_wrong_type_for_existing: a double command to a single-command point
	reset()
	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.expect("68 0e 00 00 00 00 2e 01 06 00 28 1e 00 16 14 01", "68 0e 00 00 02 00 2e 01 47 00 28 1e 00 16 14 01")

	cmds := srv.Events.OfType(evCommand)
	if len(cmds) != 4 {
		t.Fatalf("%d command events", len(cmds))
	}
	f := map[string]any{}
	for _, x := range cmds[1].Fields {
		f[x.Key] = x.Value
	}
	if f["type_id"] != byte(45) || f["ioas"].([]string)[0] != "22_20" || f["values"].([]any)[0] != 1.0 || f["result"] != "act_term" ||
		f["common_address"] != uint16(7720) || len(cmds[1].Response) != 3*16 {
		t.Fatalf("command event %v", f)
	}
}

// asduObjects decodes an I-frame's ASDU.
func asduOf(t *testing.T, f []byte) asdu {
	t.Helper()
	if f[2]&1 != 0 {
		t.Fatalf("not an I-frame: % x", f)
	}
	a, err := parseASDU(f[6:], nil)
	if errors.Is(err, errUnknownType) {
		return a
	}
	if err != nil {
		t.Fatalf("% x: %v", f, err)
	}
	return a
}

// TestGeneralInterrogation: a broadcast station interrogation returns every monitored point
// of the template, packed per type within the frame size, between act con and act term.
func TestGeneralInterrogation(t *testing.T) {
	svc, h, srv := serve(t, 2)
	c := dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.send(unhex(t, "68 0e 00 00 00 00 64 01 06 00 ff ff 00 00 00 14"))
	if a := asduOf(t, c.recv()); a.Type != cICNA || a.COT != cotActCon || a.CA != 7720 {
		t.Fatalf("act con %+v", a)
	}
	seen := map[ioa]bool{}
	var types []byte
	for i := 0; i < 20; i++ {
		f := c.recv()
		if len(f) > 254 {
			t.Fatalf("frame of %d octets", len(f))
		}
		a := asduOf(t, f)
		if a.Type == cICNA {
			if a.COT != cotActTerm {
				t.Fatalf("act term %+v", a)
			}
			break
		}
		if a.COT != cotStation || a.CA != 7720 || a.SQ {
			t.Fatalf("interrogated ASDU %+v", a)
		}
		types = append(types, a.Type)
		for _, o := range a.Objects {
			seen[o.IOA] = true
			if o.IOA == (ioa{0, 100, 108}) && int16(binary.LittleEndian.Uint16(o.Element)) != 28871 {
				t.Errorf("100_108 = % x", o.Element)
			}
			if o.IOA == (ioa{0, 107, 210}) && math.Float32frombits(binary.LittleEndian.Uint32(o.Element)) != float32(221.45) {
				t.Errorf("107_210 = % x", o.Element)
			}
		}
	}
	want := 0
	for _, pts := range svc.cfg.monitored {
		for _, p := range pts {
			want++
			if !seen[p.addr] {
				t.Errorf("point %s not interrogated", p.name)
			}
		}
	}
	if want != 59 || len(seen) != want || string(types) != string([]byte{1, 3, 11, 13}) {
		t.Fatalf("%d of %d points, types %v", len(seen), want, types)
	}
	// group 3 has no points: con and term only
	c.send(appendI(nil, 1, 6, unhex(t, "64 01 06 00 28 1e 00 00 00 17")))
	if a := asduOf(t, c.recv()); a.COT != cotActCon {
		t.Fatalf("group con %+v", a)
	}
	if a := asduOf(t, c.recv()); a.COT != cotActTerm {
		t.Fatalf("group term %+v", a)
	}
	_ = h
}

// TestCommandsAndCauses: set-points, read, clock sync, counter interrogation, select before
// operate, and the causes for unknown type, cause and common address.
func TestCommandsAndCauses(t *testing.T) {
	svc, h, srv := serve(t, 3)
	// a transformer tap changer: regulating-step command 200_1 drives step position 200_2
	tap := &point{name: "200_2", addr: ioa{0, 200, 2}, typ: mSTNA, key: "tap"}
	svc.cfg.points[tap.addr] = tap
	svc.cfg.monitored[mSTNA] = []*point{tap}
	svc.cfg.points[ioa{0, 200, 1}] = &point{name: "200_1", addr: ioa{0, 200, 1}, typ: cRCNA, key: "tapcmd", rel: tap}
	h.Databus.Set("tap", int64(5))
	c := dial(t, srv.Addr)
	c.expect(startdt, startOK)
	ns := uint16(0)
	nr := uint16(0)
	do := func(req string, n int) []asdu {
		c.send(appendI(nil, ns, nr, unhex(t, req)))
		ns++
		var out []asdu
		for i := 0; i < n; i++ {
			out = append(out, asduOf(t, c.recv()))
			nr++
		}
		return out
	}
	// set-point float 109_3 -> 107_3 (spontaneous)
	r := do("32 01 06 00 28 1e 00 6d 03 00 00 48 42 00", 3)
	if r[0].COT != cotActCon || r[1].Type != mMENC || r[1].COT != cotSpontaneous || r[1].Objects[0].IOA != (ioa{0, 107, 3}) || r[2].COT != cotActTerm {
		t.Fatalf("set-point float %+v", r)
	}
	if v, _ := h.Databus.Get("107_3"); v != 50.0 {
		t.Fatalf("107_3 = %v", v)
	}
	// set-point scaled 101_63 -> 100_12
	r = do("31 01 06 00 28 1e 00 65 3f 39 30 00", 3)
	if r[1].Type != mMENB || binary.LittleEndian.Uint16(r[1].Objects[0].Element) != 12345 {
		t.Fatalf("set-point scaled %+v", r)
	}
	// read 100_108
	r = do("66 01 05 00 28 1e 00 64 6c", 1)
	if r[0].Type != mMENB || r[0].COT != cotRequest || binary.LittleEndian.Uint16(r[0].Objects[0].Element) != 28871 {
		t.Fatalf("read %+v", r)
	}
	// read of an unknown address
	if r = do("66 01 05 00 28 1e 01 02 03", 1); r[0].COT != cotUnknownIOA {
		t.Fatalf("read unknown %+v", r)
	}
	// clock synchronisation
	if r = do("67 01 06 00 28 1e 00 00 00 00 00 1e 0c 04 0b 1a", 1); r[0].COT != cotActCon || r[0].Negative {
		t.Fatalf("clock sync %+v", r)
	}
	// counter interrogation: no integrated totals in the template
	if r = do("65 01 06 00 28 1e 00 00 00 05", 2); r[0].COT != cotActCon || r[1].COT != cotActTerm {
		t.Fatalf("counter interrogation %+v", r)
	}
	// unknown type, cause, common address
	if r = do("c8 01 06 00 28 1e 00 00 00 01", 1); r[0].COT != cotUnknownType || !r[0].Negative {
		t.Fatalf("unknown type %+v", r)
	}
	if r = do("2d 01 03 00 28 1e 00 16 14 01", 1); r[0].COT != cotUnknownCause || !r[0].Negative {
		t.Fatalf("unknown cause %+v", r)
	}
	if r = do("2d 01 06 00 29 1e 00 16 14 01", 1); r[0].COT != cotUnknownCA || !r[0].Negative {
		t.Fatalf("unknown common address %+v", r)
	}
	// select before operate on a point that requires it
	svc.cfg.points[ioa{0, 60, 6}].sbo = true
	if r = do("2e 01 06 00 28 1e 00 3c 06 02", 1); r[0].COT != cotActCon || !r[0].Negative {
		t.Fatalf("execute without select %+v", r)
	}
	if r = do("2e 01 06 00 28 1e 00 3c 06 82", 1); r[0].COT != cotActCon || r[0].Negative {
		t.Fatalf("select %+v", r)
	}
	r = do("2e 01 06 00 28 1e 00 3c 06 02", 3)
	if r[0].Negative || r[1].Type != mDPNA || r[1].COT != cotRemoteCommand || r[1].Objects[0].Element[0] != 2 || r[2].COT != cotActTerm {
		t.Fatalf("execute after select %+v", r)
	}
	// a double command with the not-permitted state 0
	if r = do("2e 01 06 00 28 1e 00 3c 07 00", 1); !r[0].Negative {
		t.Fatalf("DCS 0 %+v", r)
	}
	// regulating step: higher (2) moves the tap from 5 to 6
	r = do("2f 01 06 00 28 1e 00 c8 01 02", 3)
	if r[1].Type != mSTNA || r[1].COT != cotRemoteCommand || r[1].Objects[0].Element[0] != 6 || r[2].COT != cotActTerm {
		t.Fatalf("regulating step %+v", r)
	}
	// deactivation
	if r = do("2d 01 08 00 28 1e 00 16 14 01", 1); r[0].COT != cotDeactCon {
		t.Fatalf("deactivation %+v", r)
	}
	// a time-tagged single command (58) to 22_21
	r = do("3a 01 06 00 28 1e 00 16 15 01 00 00 00 00 01 01 1a", 3)
	if r[0].Type != 58 || r[1].Type != mSPNA || r[1].Objects[0].IOA != (ioa{0, 13, 21}) || r[2].COT != cotActTerm {
		t.Fatalf("time-tagged command %+v", r)
	}
	// a spontaneous change through the databus (another protocol writing)
	h.Databus.Set("13_42", int64(1))
	a := asduOf(t, c.recv())
	if a.Type != mSPNA || a.COT != cotSpontaneous || a.Objects[0].IOA != (ioa{0, 13, 42}) || a.Objects[0].Element[0] != 1 {
		t.Fatalf("spontaneous %+v", a)
	}
}

// TestSequence: the APCI rules close the connection on I-frames before STARTDT or after
// STOPDT, out-of-order send numbers, acknowledgements of unsent frames and broken framing;
// the k window holds frames until acknowledged.
func TestSequence(t *testing.T) {
	_, h, srv := serve(t, 4)
	gi := "64 01 06 00 28 1e 00 00 00 14"
	c := dial(t, srv.Addr)
	c.expect("68 04 43 00 00 00", "68 04 83 00 00 00") // TESTFR works before STARTDT
	c.send(appendI(nil, 0, 0, unhex(t, gi)))
	c.closed()

	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.send(appendI(nil, 5, 0, unhex(t, gi)))
	c.closed()

	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.send(appendS(nil, 3))
	c.closed()

	c = dial(t, srv.Addr)
	c.send([]byte{0x00, 0x68, 0x04, 0x07, 0, 0, 0})
	c.closed()

	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	c.expect("68 04 13 00 00 00", "68 04 23 00 00 00")
	c.send(appendI(nil, 0, 0, unhex(t, gi)))
	c.closed()

	// k = 12: three interrogations (18 frames) without acknowledging
	c = dial(t, srv.Addr)
	c.expect(startdt, startOK)
	var req []byte
	for i := uint16(0); i < 3; i++ {
		req = appendI(req, i, 0, unhex(t, gi))
	}
	c.send(req)
	for i := 0; i < 12; i++ {
		f := c.recv()
		if ns := (uint16(f[2]) | uint16(f[3])<<8) >> 1; ns != uint16(i) {
			t.Fatalf("frame %d has N(S) %d", i, ns)
		}
	}
	c.send(appendS(nil, 12))
	for i := 12; i < 18; i++ {
		f := c.recv()
		if ns := (uint16(f[2]) | uint16(f[3])<<8) >> 1; ns != uint16(i) {
			t.Fatalf("frame %d has N(S) %d", i, ns)
		}
	}
	if n := len(srv.Events.OfType(evBadFrame)); n != 5 {
		t.Errorf("%d bad_frame events, want 5", n)
	}
	_ = h
}

// TestTimers: t3 sends TESTFR act on an idle connection, t1 closes it when the TESTFR goes
// unanswered, t2 acknowledges received I-frames that drew no answer.
func TestTimers(t *testing.T) {
	_, h, srv := serve(t, 5)
	for k, v := range map[string]int64{"T_1": 2, "T_2": 1, "T_3": 1} {
		h.Databus.Set(k, v)
	}
	c := dial(t, srv.Addr)
	c.expect(startdt, startOK)
	// a malformed interrogation (no QOI) draws no answer: t2 acknowledges it
	c.send(appendI(nil, 0, 0, unhex(t, "64 01 06 00 28 1e 00 00 00")))
	if f := c.recv(); string(f) != string(appendS(nil, 1)) {
		t.Fatalf("want S-frame, got % x", f)
	}
	if f := c.recv(); string(f) != string(appendU(nil, uTestFRAct)) {
		t.Fatalf("want TESTFR act, got % x", f)
	}
	c.send(appendU(nil, uTestFRCon))
	if f := c.recv(); string(f) != string(appendU(nil, uTestFRAct)) {
		t.Fatalf("want a second TESTFR act, got % x", f)
	}
	c.closed() // not answered within t1
	var reasons []any
	for _, e := range srv.Events.OfType(evClose) {
		for _, f := range e.Fields {
			reasons = append(reasons, f.Value)
		}
	}
	if len(reasons) != 1 || reasons[0] != "t1_expired_testfr" {
		t.Fatalf("close reasons %v", reasons)
	}
}
