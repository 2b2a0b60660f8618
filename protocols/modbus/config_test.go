package modbus

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		old  string
		new  string
		want string // substring of the error; "" means a warning is expected instead
	}{
		{"bad mode", "<mode>serial</mode>", "<mode>rtu</mode>", `modbus.xml:16: <mode>: mode "rtu" is neither tcp nor serial`},
		{"bad delay", "<delay>100</delay>", "<delay>-5</delay>", "<delay>: delay"},
		{"delay too long", "<delay>100</delay>", "<delay>60000</delay>", "between 0 and 5000"},
		{"bad unknown_unit", "<unknown_unit>exception", "<unknown_unit>loud", "is not silent, exception, failure or device"},
		{"unknown databus key", `<ProductCode databus="OrderNumber"/>`, `<ProductCode databus="NoSuchKey"/>`, `databus key "NoSuchKey" is not defined`},
		{"missing basic object", `<VendorName>Siemens</VendorName>`, ``, "<VendorName> is missing"},
		{"duplicate object", `<ModelName>CPU 226</ModelName>`, `<ModelName>CPU 226</ModelName><ModelName>x</ModelName>`, "defined twice"},
		{"object too long", `<ModelName>CPU 226</ModelName>`, `<ModelName>` + strings.Repeat("x", 300) + `</ModelName>`, "at most 244 fit"},
		{"bad extended id", `<ModelName>CPU 226</ModelName>`, `<Object id="0x10">x</Object>`, "extended object id"},
		{"text and databus", `<ProductCode databus="OrderNumber"/>`, `<ProductCode databus="OrderNumber">x</ProductCode>`, "both a databus attribute and text"},
		{"bad slave id", `<slave id="1">`, `<slave id="300">`, "not a unit id"},
		{"duplicate slave", `<slave id="1">`, `<slave id="1"></slave><slave id="1">`, "slave id 1 defined twice"},
		{"bad type", "<type>COILS</type>", "<type>FLOATS</type>", `block type "FLOATS"`},
		{"bad start", "<starting_address>40001</starting_address>", "<starting_address>30001</starting_address>", "not a HOLDING_REGISTERS reference"},
		{"size too big", "<size>64</size>\n                </block>\n            </blocks>", "<size>70000</size>\n                </block>\n            </blocks>", "ends past address 65535 (start 0, size 70000)"},
		{"unknown block key", `<block name="memoryModbusCoils">`, `<block name="memoryModbusNope">`, `databus key "memoryModbusNope"`},
		{"overlap", `<type>DISCRETE_INPUTS</type>
                    <starting_address>10001</starting_address>`, `<type>COILS</type>
                    <starting_address>100</starting_address>`, "overlaps block"},
		{"unknown element warns", "<delay>100</delay>", "<delay>100</delay><turbo/>", ""},
		{"unreachable slave warns", `<slave id="1">`, `<slave id="0">`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := editedProfile(t, func(s string) string {
				if !strings.Contains(s, tc.old) {
					t.Fatalf("modbus.xml lacks %q", tc.old)
				}
				return strings.Replace(s, tc.old, tc.new, 1)
			})
			_, err := protocol{}.Configure(p.Sections[Name], nil)
			if tc.want == "" {
				if err != nil || len(p.Warnings()) == 0 {
					t.Fatalf("want a warning, got error %v, warnings %v", err, p.Warnings())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestConformityAndMoreFollows configures extended objects long enough to need two
// replies and reads them the way nmap and pymodbus do.
func TestConformityAndMoreFollows(t *testing.T) {
	long := strings.Repeat("L", 200)
	svc, h := testService(t, func(s string) string {
		return strings.Replace(s, "<ModelName>CPU 226</ModelName>",
			"<ModelName>CPU 226</ModelName><Object id=\"0x80\">"+long+"</Object><Object id=\"0x81\">"+long+
				"</Object><Object id=\"0x90\" databus=\"OrderNumber\"/>", 1)
	})
	h.Databus.Set("FirmwareVersion", "V2.2.1")
	c := &fakeConn{chunks: [][]byte{
		adu(1, 1, unhex(t, "2b 0e 03 80")...),
		adu(2, 1, unhex(t, "2b 0e 03 81")...),
		adu(3, 1, unhex(t, "2b 0e 04 90")...),
	}}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	r := splitADUs(t, c.out.Bytes())
	if len(r) != 3 {
		t.Fatalf("%d replies", len(r))
	}
	// conformity 0x83 (extended + individual), more follows, next object 0x81, one object.
	if want := unhex(t, "2b 0e 03 83 ff 81 01 80 c8"); !bytes.HasPrefix(r[0][HeaderLen:], want) {
		t.Errorf("first reply % x", r[0][HeaderLen:HeaderLen+12])
	}
	if want := unhex(t, "2b 0e 03 83 00 00 02 81 c8"); !bytes.HasPrefix(r[1][HeaderLen:], want) {
		t.Errorf("second reply % x", r[1][HeaderLen:HeaderLen+12])
	}
	if want := append(unhex(t, "2b 0e 04 83 00 00 01 90 13"), "6ES7 216-2AD23-0XB0"...); !bytes.Equal(r[2][HeaderLen:], want) {
		t.Errorf("individual reply % x", r[2][HeaderLen:])
	}
}

// TestTCPModeUnits: in tcp mode units 0 and 255 both reach the device (here slave 0),
// other units get the gateway exception.
func TestTCPModeUnits(t *testing.T) {
	p := editedProfile(t, func(s string) string {
		return strings.NewReplacer("<mode>serial", "<mode>tcp", `<slave id="1">`, `<slave id="0">`).Replace(s)
	})
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	h := protocoltest.Host(p, protocoltest.LoopbackAddr(), 1)
	c := &fakeConn{chunks: [][]byte{adu(1, 0, 3, 0, 0, 0, 1), adu(2, 255, 3, 0, 0, 0, 1), adu(3, 1, 3, 0, 0, 0, 1), adu(4, 255, 0x11)}}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	r := splitADUs(t, c.out.Bytes())
	if len(r) != 4 || r[0][7] != 3 || r[1][7] != 3 || r[2][7] != 0x83 || r[2][8] != 0x0b {
		t.Fatalf("replies % x", r)
	}
	if r[3][9] != 0 { // FC 17 server id: the slave's id (0) when ServerId is not set
		t.Fatalf("report server id % x", r[3])
	}
}

func TestRegistered(t *testing.T) {
	p, ok := protocols.Lookup(Name)
	if !ok || p.Name() != "modbus" {
		t.Fatal("modbus is not registered")
	}
	svc, _ := newTestService(t)
	if e := svc.Endpoints(); len(e) != 1 || e[0].String() != "tcp/502" {
		t.Fatalf("endpoints %v", e)
	}
}

// TestConpotStyleTemplate loads a template written the way Conpot's are (tcp mode, slaves
// 0 and 255, ANALOG_INPUTS, <content> naming the databus key, Modicon addresses) and reads
// it at 0-based wire addresses.
func TestConpotStyleTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("template.xml", `<core><template><entity name="unit">X</entity></template><databus><key_value_mappings>
<key name="bitsA"><value type="value">[1, 0, 1, 1]</value></key>
<key name="regsB"><value type="value">[7, 8, 9]</value></key>
</key_value_mappings></databus></core>`)
	write("modbus/modbus.xml", `<modbus enabled="True" host="0.0.0.0" port="5020">
  <device_info><VendorName>V</VendorName><ProductCode>P</ProductCode><MajorMinorRevision>R</MajorMinorRevision></device_info>
  <mode>tcp</mode>
  <delay>100</delay>
  <slaves>
    <slave id="255"><blocks>
      <block name="a"><type>COILS</type><starting_address>1</starting_address><size>4</size><content>bitsA</content></block>
      <block name="b"><type>ANALOG_INPUTS</type><starting_address>30001</starting_address><size>3</size><content>regsB</content></block>
    </blocks></slave>
  </slaves>
</modbus>`)
	p := protocoltest.Profile(t, dir)
	svc := protocoltest.Configure(t, protocol{}, p).(*service)
	h := protocoltest.Host(p, protocoltest.LoopbackAddr(), 3)
	c := &fakeConn{chunks: [][]byte{adu(1, 255, 1, 0, 0, 0, 4), adu(2, 0, 4, 0, 1, 0, 2), adu(3, 255, 4, 0x75, 0x31, 0, 1)}}
	svc.ServeConn(context.Background(), testSession(h, nil), c)
	want := append(append(adu(1, 255, 1, 1, 0x0d), adu(2, 0, 4, 4, 0, 8, 0, 9)...), adu(3, 255, 0x84, 2)...)
	if !bytes.Equal(c.out.Bytes(), want) {
		t.Fatalf("replies\n got % x\nwant % x", c.out.Bytes(), want)
	}
}
