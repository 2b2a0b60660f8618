package bpf

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"
)

// snmpMsg marshals a real SNMP request with gosnmp's codec.
func snmpMsg(t testing.TB, v gosnmp.SnmpVersion, pdu gosnmp.PDUType) []byte {
	t.Helper()
	p := &gosnmp.SnmpPacket{Version: v, Community: "public", PDUType: pdu, RequestID: 7, MaxRepetitions: 10,
		Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.Null}}}
	if v == gosnmp.Version3 {
		p.MsgFlags = gosnmp.NoAuthNoPriv | gosnmp.Reportable
		p.SecurityModel = gosnmp.UserSecurityModel
		p.SecurityParameters = &gosnmp.UsmSecurityParameters{UserName: "u", AuthoritativeEngineID: "\x80\x00\x1f\x88\x04abc"}
		p.MsgID = 9
		p.MsgMaxSize = 1400
	}
	b, err := p.MarshalMsg()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// longCommunity re-encodes a v2c message with a 200-byte community (0x81 length
// forms, as net-snmp writes them).
func longCommunity(t testing.TB, msg []byte) []byte {
	t.Helper()
	// msg: 30 L 02 01 ver 04 06 "public" PDU...
	if msg[0] != 0x30 || msg[1] >= 0x80 || msg[4] != 1 || msg[5] != 4 {
		t.Fatalf("unexpected gosnmp encoding % x", msg[:8])
	}
	pdu := msg[7+int(msg[6]):]
	body := append([]byte{2, 1, 1, 4, 0x81, 200}, []byte(strings.Repeat("c", 200))...)
	body = append(body, pdu...)
	return append([]byte{0x30, 0x82, byte(len(body) >> 8), byte(len(body))}, body...)
}

// TestSNMPClasses checks per-command-class rules on SNMP v1/v2c requests built with
// gosnmp: each class has its own buckets, and anything the program cannot classify
// uses the port's rule.
func TestSNMPClasses(t *testing.T) {
	rules := []Rule{
		{Port: 161, PerSource: 60, Burst: 1},
		{Port: 161, Class: "get", PerSource: 60, Burst: 2},
		{Port: 161, Class: "next", PerSource: 60, Burst: 3},
		{Port: 161, Class: "set", PerSource: 60, Burst: 4},
		{Port: 161, Class: "bulk", PerSource: 60, Burst: 5},
	}
	v2get := snmpMsg(t, gosnmp.Version2c, gosnmp.GetRequest)
	cases := []struct {
		name    string
		payload []byte
		class   string
		passed  int // of 10
	}{
		{"v2c get", v2get, "get", 2},
		{"v1 get", snmpMsg(t, gosnmp.Version1, gosnmp.GetRequest), "get", 2},
		{"v2c getnext", snmpMsg(t, gosnmp.Version2c, gosnmp.GetNextRequest), "next", 3},
		{"v2c set", snmpMsg(t, gosnmp.Version2c, gosnmp.SetRequest), "set", 4},
		{"v2c getbulk", snmpMsg(t, gosnmp.Version2c, gosnmp.GetBulkRequest), "bulk", 5},
		{"long community, long lengths", longCommunity(t, v2get), "get", 2},
		{"v3 not classified", snmpMsg(t, gosnmp.Version3, gosnmp.GetRequest), "", 1},
		{"v2c inform not a class", snmpMsg(t, gosnmp.Version2c, gosnmp.InformRequest), "", 1},
		{"PDU tag is enough", v2get[:14], "get", 2},
		{"truncated before the PDU", v2get[:13], "", 1},
		{"truncated in the community", v2get[:10], "", 1},
		{"not BER", []byte("hello snmp"), "", 1},
		{"empty", []byte{}, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := loadTest(t, rules...)
			f := udp4(t, "198.18.0.10", 161, frameOpt{payload: tc.payload})
			if got := runN(t, l, f, 10); got != tc.passed {
				t.Errorf("passed %d of 10, want %d", got, tc.passed)
			}
			cs, err := l.Counters()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, c := range cs {
				if c.Packets > 0 {
					got[c.Class+"/"+c.Reason] = c.Packets
				}
			}
			want := map[string]uint64{tc.class + "/ok": uint64(tc.passed), tc.class + "/per_source": uint64(10 - tc.passed)}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("counters %v, want %v", got, want)
			}
			top, _, _, err := l.TopSources(1)
			if err != nil || len(top) != 1 || top[0].Class != tc.class {
				t.Errorf("top source %+v, %v; want class %q", top, err, tc.class)
			}
		})
	}

	// Bytes past the UDP length (padding, trailers) are not read.
	{
		l := loadTest(t, rules...)
		f := udp4(t, "198.18.0.10", 161, frameOpt{payload: v2get})
		f[38], f[39] = 0, 8+13 // the UDP length now ends just before the PDU tag
		if got := runN(t, l, f, 10); got != 1 {
			t.Errorf("UDP length before the PDU: passed %d, want 1 (port rule)", got)
		}
	}

	// Class rules without a port rule: the rest passes unlimited; deleting the port
	// removes the class rules too.
	l := loadTest(t, Rule{Port: 161, Class: "set", PerSource: 60, Burst: 1})
	v3 := udp4(t, "198.18.0.10", 161, frameOpt{payload: snmpMsg(t, gosnmp.Version3, gosnmp.GetRequest)})
	set := udp4(t, "198.18.0.10", 161, frameOpt{payload: snmpMsg(t, gosnmp.Version2c, gosnmp.SetRequest)})
	if got := runN(t, l, v3, 5) + runN(t, l, set, 5); got != 6 {
		t.Errorf("passed %d, want 5 unclassified + 1 set", got)
	}
	if ev := nextEvent(t, l); ev.Class != "set" || ev.Port != 161 || ev.Kind != "start" {
		t.Errorf("event %+v", ev)
	}
	rs, err := l.Rules()
	if err != nil || len(rs) != 2 || rs[0].Class != "" || rs[0].PerSource != 0 || rs[1].Class != "set" {
		t.Errorf("rules %+v, %v", rs, err)
	}
	if err := l.DeleteRule(161); err != nil {
		t.Fatal(err)
	}
	if rs, _ := l.Rules(); len(rs) != 0 {
		t.Errorf("rules after delete: %+v", rs)
	}
	if got := runN(t, l, set, 5); got != 5 {
		t.Errorf("after delete: %d of 5 passed", got)
	}
	if err := l.SetRule(Rule{Port: 161, Class: "walk"}); err == nil {
		t.Errorf("unknown class accepted")
	}
}
