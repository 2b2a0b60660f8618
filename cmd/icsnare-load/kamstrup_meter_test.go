package main

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	kamstrupmeter "github.com/icsnare/icsnare/protocols/kamstrup_meter"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// kamstrupTemplate is Conpot's kamstrup_382 template, which serves both Kamstrup protocols.
const kamstrupTemplate = "../../testdata/conpot/kamstrup_382"

// kamstrupTemplateCopy copies the template to a temporary directory with the meter's
// reply_delay set to delay (seconds), so a short run makes many requests.
func kamstrupTemplateCopy(t *testing.T, delay string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "kamstrup_382")
	if err := os.CopyFS(dir, os.DirFS(kamstrupTemplate)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "kamstrup_meter", "kamstrup_meter.xml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	const addr = "<communication_address>63</communication_address>"
	if !bytes.Contains(b, []byte(addr)) {
		t.Fatalf("%s: no %s", p, addr)
	}
	b = bytes.Replace(b, []byte(addr), []byte(addr+"<reply_delay>"+delay+"</reply_delay>"), 1)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveKamstrup serves protocol name of the template in dir on a fresh test address.
func serveKamstrup(t *testing.T, name, dir string) *protocoltest.Server {
	t.Helper()
	a := testAddr()
	svc, h := service(t, name, dir, a)
	return protocoltest.ServeTCP(t, name, svc.(protocols.StreamService), h, netip.AddrPortFrom(a, 0).String())
}

// TestKamstrupMeterMode runs kamstrup-meter against the meter of the kamstrup_382 template:
// every request succeeds, and the meter saw only well-formed GetRegister requests for the
// register asked (no bad frames, nothing ignored).
func TestKamstrupMeterMode(t *testing.T) {
	cases := []struct {
		name, delay string
		register    int
		args        []string
	}{
		{"default", "0", 1, nil},
		{"register 13 (an id that is stuffed)", "0", 13, []string{"-register", "13"}},
		{"register 1054 depth 4", "0", 1054, []string{"-register", "1054", "-depth", "4"}},
		{"the template's reply delay", "", 1205, []string{"-register", "1205", "-duration", "1s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := kamstrupTemplate
			if c.delay != "" {
				dir = kamstrupTemplateCopy(t, c.delay)
			}
			srv := serveKamstrup(t, "kamstrup_meter", dir)
			code, ok, failed, _ := runCounts(t, "kamstrup-meter", srv.Addr.String(), c.args...)
			if code != 0 || ok <= 0 || failed != 0 {
				t.Fatalf("exit %d, requests=%d errors=%d", code, ok, failed)
			}
			if bad := srv.Events.OfType("kamstrup_meter.bad_frame"); len(bad) > 0 {
				t.Fatalf("%d bad frames, first % x", len(bad), bad[0].Request)
			}
			reqs := srv.Events.OfType("kamstrup_meter.request")
			if len(reqs) < ok {
				t.Fatalf("%d requests served, %d answers counted", len(reqs), ok)
			}
			for _, e := range reqs {
				for _, f := range e.Fields {
					if f.Key == "ignored" || (f.Key == "registers" && !slices.Equal(f.Value.([]int), []int{c.register})) {
						t.Fatalf("request % x: %s=%v", e.Request, f.Key, f.Value)
					}
				}
			}
			if srv.Panics.Load() != 0 {
				t.Fatal("handler panicked")
			}
		})
	}
}

// TestKMPCodec checks the client's frames against the protocol package's codec: its
// requests parse there, and its parser reads the answers that codec builds, stuffed
// bytes and all, and rejects altered ones.
func TestKMPCodec(t *testing.T) {
	for _, reg := range []uint16{0, 1, 13, 0x0D40, 0x1B80, 1054, 65535} {
		m, err := kamstrupmeter.ParseFrame(kmpRequest(kmpAddr, reg))
		if err != nil || m.Addr != kmpAddr || m.Cmd != kamstrupmeter.CmdGetRegister {
			t.Fatalf("register %d: %+v %v", reg, m, err)
		}
		if ids, err := kamstrupmeter.ParseGetRegister(m.Data); err != nil || !slices.Equal(ids, []uint16{reg}) {
			t.Fatalf("register %d: ids %v %v", reg, ids, err)
		}
		for _, value := range [][]byte{{0x40, 0x0D, 0x1B, 0x80, 0x06}, {7}, bytes.Repeat([]byte{0x0D}, kmpMaxValue)} {
			rv := kamstrupmeter.RegisterValue{ID: reg, Units: 0x40, SiEx: 0x80, Value: value}
			raw := kamstrupmeter.AppendFrame(nil, kamstrupmeter.ResponseMagic,
				kamstrupmeter.Message{Addr: kmpAddr, Cmd: kamstrupmeter.CmdGetRegister, Data: kamstrupmeter.AppendRegister(nil, rv)})
			got, err := kmpReadFrame(bufio.NewReaderSize(bytes.NewReader(raw), 2*kmpMaxFrame))
			if err != nil {
				t.Fatalf("register %d value % x: %v", reg, value, err)
			}
			r, err := kmpParseAnswer(got, nil, reg)
			if err != nil || r.id != reg || r.units != 0x40 || r.siex != 0x80 || !bytes.Equal(r.value, value) {
				t.Fatalf("register %d value % x: %+v %v", reg, value, r, err)
			}
			if _, err := kmpParseAnswer(raw, nil, reg+1); err == nil {
				t.Fatalf("register %d accepted as %d", reg, reg+1)
			}
			for i := 1; i < len(raw)-1; i++ {
				bad := bytes.Clone(raw)
				bad[i] ^= 0x01
				if _, err := kmpParseAnswer(bad, nil, reg); err == nil {
					t.Fatalf("register %d: frame with byte %d altered accepted: % x", reg, i, bad)
				}
			}
		}
	}
}

// kmpAnswer is a meter's answer frame for data.
func kmpAnswer(addr byte, data []byte) []byte {
	return kamstrupmeter.AppendFrame(nil, kamstrupmeter.ResponseMagic, kamstrupmeter.Message{Addr: addr, Cmd: kamstrupmeter.CmdGetRegister, Data: data})
}

// TestKamstrupMeterWrongAnswers runs the mode against meters answering each GetRegister
// wrongly: the first request fails, with the error naming what was wrong.
func TestKamstrupMeterWrongAnswers(t *testing.T) {
	record := func(id uint16) []byte {
		return kamstrupmeter.AppendRegister(nil, kamstrupmeter.RegisterValue{ID: id, Units: 2, SiEx: 65, Value: []byte{0x11, 0x22, 0x33, 0x44}})
	}
	cases := []struct {
		name, want string
		answer     func(reg uint16) []byte // nil: close instead
	}{
		{"bad CRC", "CRC", func(reg uint16) []byte {
			f := kmpAnswer(kmpAddr, record(reg))
			f[bytes.IndexByte(f, 0x44)] = 0x45
			return f
		}},
		{"another register", "record for register 2", func(reg uint16) []byte { return kmpAnswer(kmpAddr, record(reg+1)) }},
		{"no record", "register 1: no record", func(uint16) []byte { return kmpAnswer(kmpAddr, nil) }},
		{"another address", "address 0x3e", func(reg uint16) []byte { return kmpAnswer(0x3E, record(reg)) }},
		{"value length", "value length 2", func(reg uint16) []byte {
			r := record(reg)
			r[3] = 2
			return kmpAnswer(kmpAddr, r)
		}},
		{"unescaped start byte", "unescaped 0x40", func(reg uint16) []byte {
			f := kmpAnswer(kmpAddr, record(reg))
			return append(f[:1:1], append([]byte{0x40}, f[1:]...)...)
		}},
		{"no end byte", "no end byte", func(uint16) []byte { return bytes.Repeat([]byte{0x41}, 400) }},
		{"garbage", "not an answer frame", func(uint16) []byte { return []byte("hello\r") }},
		{"closes", "no answer: EOF", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, func(nc net.Conn) {
				br := bufio.NewReader(nc)
				for {
					raw, err := br.ReadSlice(kmpEnd)
					if err != nil {
						return
					}
					m, err := kamstrupmeter.ParseFrame(raw)
					if err != nil {
						t.Errorf("request % x: %v", raw, err)
						return
					}
					ids, err := kamstrupmeter.ParseGetRegister(m.Data)
					if err != nil || len(ids) != 1 || c.answer == nil {
						return
					}
					if _, err := nc.Write(c.answer(ids[0])); err != nil {
						return
					}
				}
			})
			code, ok, failed, stderr := runCounts(t, "kamstrup-meter", addr)
			if code == 0 || ok > 0 || (ok < 0 && code != 1) {
				t.Fatalf("exit %d, requests=%d errors=%d", code, ok, failed)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("stderr %q does not name %q", stderr, c.want)
			}
		})
	}
}

// TestKamstrupMeterFlagsChecked: a register outside 0..65535 or a depth past what the meter
// serves exits with status 2; the bounds themselves pass.
func TestKamstrupMeterFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-register", "65536"}, {"-register", "-2"}, {"-register", "100000"}, {"-depth", "9"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"-mode", "kamstrup-meter", "-target", "127.95.0.1:1"}, args...), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	for _, o := range []opts{{register: -1, depth: 1}, {register: 0, depth: 8}, {register: 65535, depth: 1}} {
		if err := newKamstrupMeter(o).(checker).check(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
