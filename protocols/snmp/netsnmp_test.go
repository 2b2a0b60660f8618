package snmp

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"strings"
	"testing"
)

func TestWalksAgree(t *testing.T) {
	srv, _ := serve(t, protocoltest.Station, "127.0.0.1:0")
	v1, err := netsnmp(t, "snmpwalk", "-v1", "-c", "public", target(srv), ".1")
	if err != nil {
		t.Fatalf("snmpwalk -v1: %v", err)
	}
	v2, err := netsnmp(t, "snmpwalk", "-v2c", "-c", "public", target(srv), ".1")
	if err != nil {
		t.Fatalf("snmpwalk -v2c: %v", err)
	}
	bulk, err := netsnmp(t, "snmpbulkwalk", "-v2c", "-c", "public", "-Cr10", target(srv), ".1")
	if err != nil {
		t.Fatalf("snmpbulkwalk: %v", err)
	}
	a, b, c := oidsOf(v1), oidsOf(v2), oidsOf(bulk)
	if len(a) < 30 {
		t.Fatalf("v1 walk returned %d objects", len(a))
	}
	if strings.Join(a, " ") != strings.Join(b, " ") || strings.Join(b, " ") != strings.Join(c, " ") {
		t.Fatalf("walks differ:\nv1 %v\nv2c %v\nbulk %v", a, b, c)
	}
	for i := 1; i < len(a); i++ {
		if compareOID(mustOID(t, a[i-1]), mustOID(t, a[i])) >= 0 {
			t.Fatalf("walk not in lexicographic order at %s, %s", a[i-1], a[i])
		}
	}
	for _, out := range []string{v2, bulk} {
		if !strings.Contains(out, "No more variables left in this MIB View") {
			t.Errorf("v2c walk did not end with endOfMibView:\n%s", out)
		}
	}
}

// testOptions are the options the tests configure the agent with: the test MIBs on the
// mibpath, as --mibpath testdata/mibs would add them.
func testOptions() *options { return &options{MIBPath: []string{"testdata/mibs"}} }

func TestGetThreeOIDs(t *testing.T) {
	srv, _ := serve(t, protocoltest.Station, "127.0.0.1:0")
	for _, v := range []string{"-v1", "-v2c"} {
		out, err := netsnmp(t, "snmpget", v, "-c", "public", target(srv),
			"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.3.0")
		if err != nil {
			t.Fatalf("snmpget %s: %v", v, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("snmpget %s: want 3 varbinds, got %d:\n%s", v, len(lines), out)
		}
		descr, _ := srv.Host.Databus.GetString("sysDescr")
		if !strings.Contains(lines[0], `STRING: "`+descr+`"`) || !strings.HasPrefix(lines[2], ".1.3.6.1.2.1.1.3.0 = Timeticks: (") {
			t.Fatalf("unexpected values:\n%s", out)
		}
	}
}

func TestSetSysLocation(t *testing.T) {
	srv, _ := serve(t, protocoltest.Station, "127.0.0.1:0")
	tests := []struct {
		name, version, community string
		wantErr                  string // substring of the failure output, "" for success
	}{
		{"v2c write community", "-v2c", "private", ""},
		{"v1 write community", "-v1", "private", ""},
		{"v2c read community", "-v2c", "public", "Reason: noAccess"},
		{"v1 read community", "-v1", "public", "Reason: (readOnly)"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			val := fmt.Sprintf("Pumpwerk %d", i)
			out, err := netsnmp(t, "snmpset", tt.version, "-c", tt.community, target(srv), "1.3.6.1.2.1.1.6.0", "s", val)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(out, tt.wantErr) {
					t.Fatalf("want %q, got err=%v:\n%s", tt.wantErr, err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("snmpset: %v", err)
			}
			got, err := netsnmp(t, "snmpget", "-v2c", "-c", "public", target(srv), "1.3.6.1.2.1.1.6.0")
			if err != nil || !strings.Contains(got, `STRING: "`+val+`"`) {
				t.Fatalf("GET after SET: %v\n%s", err, got)
			}
			if db, _ := srv.Host.Databus.GetString("sysLocation"); db != val {
				t.Fatalf("databus sysLocation = %q, want %q", db, val)
			}
		})
	}
	// Errors a real agent gives for the wrong object or type.
	errs := []struct{ oid, typ, val, want string }{
		{"1.3.6.1.2.1.1.1.0", "s", "x", "notWritable"},
		{"1.3.6.1.2.1.1.6.0", "i", "5", "wrongType"},
		{"1.3.6.1.2.1.1.6.1", "s", "x", "noCreation"},
		{"1.3.6.1.2.1.2.2.1.7.1", "i", "9", "wrongValue"},
		{"1.3.6.1.4.1.4329.1.0", "i", "1", "notWritable"},
	}
	for _, e := range errs {
		out, err := netsnmp(t, "snmpset", "-v2c", "-c", "private", target(srv), e.oid, e.typ, e.val)
		if err == nil || !strings.Contains(out, "Reason: "+e.want) {
			t.Errorf("SET %s %s %s: want %s, got:\n%s", e.oid, e.typ, e.val, e.want, out)
		}
	}
}

func TestV3(t *testing.T) {
	srv, _ := serve(t, protocoltest.Station, "127.0.0.1:0")
	descr, _ := srv.Host.Databus.GetString("sysDescr")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"authPriv SHA AES", []string{"-l", "authPriv", "-u", "operator", "-a", "SHA", "-A", "CP443-Leitstand", "-x", "AES", "-X", "Netz-Betrieb-07"}, descr},
		{"authPriv MD5 DES", []string{"-l", "authPriv", "-u", "service", "-a", "MD5", "-A", "Wartung2011", "-x", "DES", "-X", "Wartung2011"}, descr},
		{"authNoPriv SHA-256", []string{"-l", "authNoPriv", "-u", "monitor", "-a", "SHA-256", "-A", "Monitoring-Nord"}, descr},
		{"wrong password", []string{"-l", "authPriv", "-u", "operator", "-a", "SHA", "-A", "wrong-password", "-x", "AES", "-X", "Netz-Betrieb-07"}, "Authentication failure"},
		{"unknown user", []string{"-l", "authNoPriv", "-u", "nobody", "-a", "SHA", "-A", "whatever1"}, "Unknown user name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-v3"}, tt.args...)
			args = append(args, target(srv), "1.3.6.1.2.1.1.1.0")
			out, _ := netsnmp(t, "snmpget", args...)
			if !strings.Contains(out, tt.want) {
				t.Fatalf("want %q in:\n%s", tt.want, out)
			}
		})
	}
	hs := srv.Host.State(stateKey, nil).(*hostState)
	if hs.usm[usmWrongDigests].Load() == 0 || hs.usm[usmUnknownUserNames].Load() == 0 || hs.usm[usmUnknownEngineIDs].Load() == 0 {
		t.Errorf("usmStats not counted: %v %v %v", hs.usm[usmWrongDigests].Load(), hs.usm[usmUnknownUserNames].Load(), hs.usm[usmUnknownEngineIDs].Load())
	}
	// A v3 walk goes through GETNEXT with privacy on every step.
	out, err := netsnmp(t, "snmpwalk", "-v3", "-l", "authPriv", "-u", "operator", "-a", "SHA", "-A", "CP443-Leitstand",
		"-x", "AES", "-X", "Netz-Betrieb-07", target(srv), "1.3.6.1.2.1.1")
	if err != nil || len(oidsOf(out)) != 8 {
		t.Fatalf("v3 walk of system: %v\n%s", err, out)
	}
}

func TestUserMIB(t *testing.T) {
	srv, _ := serve(t, "testdata/usermib", "127.0.0.1:0")
	level, _ := srv.Host.Databus.GetInt("tankLevel")
	out, err := netsnmp(t, "snmpwalk", "-v2c", "-c", "plant", target(srv), "1.3.6.1.4.1.99999")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(".1.3.6.1.4.1.99999.1.1.0 = Gauge32: %d", level),
		`.1.3.6.1.4.1.99999.1.2.1.2.1 = STRING: "Hochbehaelter Sued"`,
		`.1.3.6.1.4.1.99999.1.2.1.2.2 = STRING: "Hochbehaelter Nord"`,
		".1.3.6.1.4.1.99999.1.3.0 = Counter32: 1000",
		".1.3.6.1.4.1.99999.1.4.0 = INTEGER: 500",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// The increment engine moves on every read.
	out, _ = netsnmp(t, "snmpget", "-v2c", "-c", "plant", target(srv), "1.3.6.1.4.1.99999.1.3.0")
	if !strings.Contains(out, "Counter32: 1005") {
		t.Errorf("increment engine: %s", out)
	}
	// Range checks come from the user MIB.
	out, err = netsnmp(t, "snmpset", "-v2c", "-c", "plant", target(srv), "1.3.6.1.4.1.99999.1.4.0", "i", "5000")
	if err == nil || !strings.Contains(out, "wrongValue") {
		t.Errorf("out-of-range SET: %v %s", err, out)
	}
}

func TestNmapScripts(t *testing.T) {
	protocoltest.NeedRoot(t)
	nmap := protocoltest.NeedTool(t, "nmap")
	addr := protocoltest.LoopbackAddr()
	srv, _ := serve(t, protocoltest.Station, netip.AddrPortFrom(addr, Port).String())
	out, err := protocoltest.Run(t, 60*time.Second, nmap, "-n", "-sU", "-Pn", "-p", "161", "--script", "snmp-info,snmp-sysdescr", addr.String())
	if err != nil {
		t.Fatalf("nmap: %v", err)
	}
	descr, _ := srv.Host.Databus.GetString("sysDescr")
	hs := srv.Host.State(stateKey, nil).(*hostState)
	for _, want := range []string{"161/udp open", "snmp-sysdescr: " + descr, "enterprise: Siemens", "engineIDData: " + hex.EncodeToString(hs.engineID[5:])} {
		if !strings.Contains(strings.ReplaceAll(out, "|", ""), want) {
			t.Errorf("nmap output lacks %q", want)
		}
	}
}
