package clone

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
)

func eval(t *testing.T, expr string, seed uint64) string {
	t.Helper()
	e, err := profiles.CompileExpr("test", expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	v, err := e.Eval(seed)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s: %T, not a string", expr, v)
	}
	return s
}

func TestSeededShapes(t *testing.T) {
	for _, tc := range []struct {
		kind, value string
		shape       string // a regexp every draw must match
	}{
		{KindMAC, "00:1b:1b:5f:26:2f", `^00:1b:1b(:[0-9a-f]{2}){3}$`},
		{KindMAC, "00-1B-1B-5F-26-2F", `^00-1B-1B(-[0-9A-F]{2}){3}$`},
		{KindMAC, "001b1b5f262f", `^001b1b[0-9a-f]{6}$`},
		{KindSerial, "S C-C2UR28922012", `^S C-[A-Z][0-9][A-Z]{2}[0-9]{8}$`},
		{KindSerial, "SN 4711-0815", `^SN [0-9]{4}-[0-9]{4}$`},
		{KindSerial, "x", `^[a-z]$`},
		{KindSerial, "", `^$`},
		{KindHostname, "PW12-CPU226", `^PW[0-9]{2}-CPU226$`},
		{KindHostname, "CP443-KA42", `^CP443-KA[0-9]{2}$`},
		{KindHostname, "plc-hall3-07", `^plc-hall[0-9]-07$`},
		{KindHostname, "gateway", `^gateway-[0-9]{2}$`},
		{KindHostname, "Straße7", `^Straße[0-9]$`},
		{KindIP, "192.0.2.17", `^192\.0\.[0-9]{1,3}\.[0-9]{1,3}$`},
		{KindSerial, `quote " and \ backslash 12`, `^[a-z]{5} " [a-z]{3} \\ [a-z]{9} [0-9]{2}$`},
	} {
		t.Run(tc.kind+" "+tc.value, func(t *testing.T) {
			tpl := NewTemplate(netip.MustParseAddr("127.38.0.1"))
			k := tpl.Seed(tc.kind, "test", "field", tc.value)
			if again := tpl.Seed(tc.kind, "other", "field", tc.value); again != k {
				t.Errorf("the same value got two keys %s and %s", k, again)
			}
			expr := tpl.keys[tpl.keyIndex[k]].expr
			re := regexp.MustCompile(tc.shape)
			seen := map[string]bool{}
			for seed := uint64(1); seed <= 40; seed++ {
				v := eval(t, expr, seed)
				if !re.MatchString(v) {
					t.Fatalf("seed %d drew %q from %s, not of the shape %s", seed, v, expr, tc.shape)
				}
				seen[v] = true
			}
			if len(tc.value) > 1 && len(seen) < 2 {
				t.Errorf("40 hosts all drew %v", seen)
			}
		})
	}
}

func TestStarlarkString(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted"`, `back\slash`, "new\nline\r\ttab", "ctl\x01\x1f\x7f", "ümlaut €", "\u2028sep"} {
		if got := eval(t, StarlarkString(s), 1); got != s {
			t.Errorf("%q came back as %q (literal %s)", s, got, StarlarkString(s))
		}
	}
}

func TestIsPrintable(t *testing.T) {
	for s, want := range map[string]bool{"CPU 226": true, "": true, " lead": false, "trail ": false, "a\nb": false,
		"\x00\x1b": false, "\xff\xfe": false, "Straße": true} {
		if IsPrintable(s) != want {
			t.Errorf("IsPrintable(%q) = %v", s, !want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"", "127.38.0.0/24", "127.38.0.1-9", "127.38.0.1,127.38.0.2", "*", "127.38.0.*",
		"0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255", "no-such-host.invalid"} {
		if a, err := ParseTarget(ctx, bad); err == nil {
			t.Errorf("%q accepted as %s", bad, a)
		}
	}
	for _, good := range []string{"127.38.0.1", " 127.38.0.2 ", "::1", "::ffff:127.38.0.3"} {
		if _, err := ParseTarget(ctx, good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

func TestParseV3(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *V3User
	}{
		{"ops", &V3User{Name: "ops", AuthProto: "SHA", PrivProto: "AES"}},
		{"ops:secret1", &V3User{Name: "ops", AuthProto: "SHA", AuthPass: "secret1", PrivProto: "AES"}},
		{"ops:SHA-256=a:DES=b", &V3User{Name: "ops", AuthProto: "SHA-256", AuthPass: "a", PrivProto: "DES", PrivPass: "b"}},
		{"", nil}, {"ops::priv", nil}, {"a:b:c:d", nil},
	} {
		got, err := ParseV3(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q accepted", tc.in)
			}
			continue
		}
		if err != nil || *got != *tc.want {
			t.Errorf("%q: %+v, %v", tc.in, got, err)
		}
	}
}

// conpotElements is the element set conpot.md documents for each file of a template
// (plus icsnare's documented knobs, named apart), so a clone stays a Conpot template.
var conpotElements = map[string]string{
	"template.xml": "core template entity databus key_value_mappings key value",
	"snmp":         "snmp config entity mibs mib symbol value engine",
	"modbus":       "modbus device_info VendorName ProductCode MajorMinorRevision VendorUrl ProductName ModelName UserApplicationName mode delay slaves slave blocks block type starting_address size content",
	"s7comm":       "s7comm system_status_lists ssl system_name module_name plant_ident copyright serial module_type_name oem_id location module_identification hardware_identification firmware_identification",
	"http":         "http global config entity headers htdocs node status tarpit alias triggers statuscodes",
	"ftp":          "ftp device_info enabled_commands banner motd max_login_attempts sever_timeout device_type ftp_users users user uname password anon_login ftp_vfs",
	// bacnet.xml's XSD takes any property element (xs:any) in device_info and properties.
	"bacnet": "bacnet device_info device_name device_identifier vendor_name vendor_identifier max_apdu_length_accepted segmentation_supported model_name protocol_version object_list object properties object_identifier object_name object_type present_value " +
		"firmware_revision application_software_version location description serial_number system_status max_segments_accepted apdu_segment_timeout apdu_timeout number_of_apdu_retries protocol_revision utc_offset daylight_savings_status units cov_increment active_text inactive_text number_of_states state_text relinquish_default",
	"enip": "enip device_info VendorId ProductName DeviceType SerialNumber ProductRevision ProductCode mode latency timeout tags tag type size value addr",
	"ipmi": "ipmi device_info device_name user_list user user_name password privilege active fixed",
}

// icsnareElements are the icsnare knobs a clone may write where Conpot has none.
var icsnareElements = map[string]string{
	"modbus": "unknown_unit addressing ServerId ServerIdData Object",
	"ftp":    "syst",
	"s7comm": "cpu rack slot pdu_size max_amq max_connections module_type protection_level mode_switch operating_mode mpi_rate bus_rate memory area blocks block",
	"enip":   "Status State",
	"ipmi":   "manufacturer_id product_id device_id device_revision firmware cipher_suites auth_types",
}

func TestWriteLoads(t *testing.T) {
	tpl := NewTemplate(netip.MustParseAddr("127.38.0.1"))
	tpl.Unit, tpl.Vendor = "CPU <226>", `Ven"dor & Co`
	k := tpl.Literal("odd", "a\n\"b\"\x01")
	mac := tpl.Seed(KindMAC, "snmp", "ifPhysAddress.1", "00:1b:1b:5f:26:2f")
	tpl.Section("snmp", 161, `    <config><entity name="community" access="read-only">public</entity></config>
    <mibs><mib name="SNMPv2-MIB"><symbol name="sysDescr"><value>`+k+`</value></symbol></mib>
    <mib name="IF-MIB"><symbol name="ifPhysAddress" instance="1"><value>`+mac+`</value></symbol></mib></mibs>
`)
	tpl.File("http/htdocs/x.htm", []byte("x"))
	dir := t.TempDir()
	if err := tpl.Write(dir); err != nil {
		t.Fatal(err)
	}
	p, err := profiles.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ProtocolNames(); len(got) != 1 || got[0] != "snmp" {
		t.Errorf("protocols %v", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "template.xml"))
	if !strings.Contains(string(b), "CPU &lt;226&gt;") {
		t.Errorf("unit not escaped:\n%s", b)
	}
	checkConpotElements(t, dir)
	bad := NewTemplate(netip.MustParseAddr("127.38.0.1"))
	bad.Section("http", 80, "")
	bad.File("http/../../escape", []byte("x"))
	if err := bad.Write(t.TempDir()); err == nil {
		t.Error("a file outside the template directory was written")
	}
	if err := NewTemplate(netip.MustParseAddr("127.38.0.1")).Write(t.TempDir()); err == nil {
		t.Error("an empty template was written")
	}
}

var elemRe = regexp.MustCompile(`<([A-Za-z_][A-Za-z0-9_]*)`)

// checkConpotElements fails on any element of dir's XML outside conpot.md's set and
// icsnare's documented knobs, and logs the icsnare knobs used.
func checkConpotElements(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".xml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		set := conpotElements[name]
		if set == "" {
			set = conpotElements[strings.TrimSuffix(name, ".xml")]
		}
		allowed := map[string]bool{}
		for _, e := range strings.Fields(set) {
			allowed[e] = true
		}
		ext := map[string]bool{}
		for _, e := range strings.Fields(icsnareElements[strings.TrimSuffix(name, ".xml")]) {
			ext[e] = true
		}
		for _, m := range elemRe.FindAllStringSubmatch(string(b), -1) {
			switch {
			case allowed[m[1]]:
			case ext[m[1]]:
				t.Logf("%s: icsnare knob <%s>", name, m[1])
			default:
				t.Errorf("%s: <%s> is neither a Conpot element nor a documented icsnare knob", name, m[1])
			}
		}
		return nil
	})
}
