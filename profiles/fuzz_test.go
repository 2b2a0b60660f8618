package profiles

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzParseXML: any bytes give a tree or an *Error naming the file, never a panic.
func FuzzParseXML(f *testing.F) {
	for _, s := range []string{
		"<core><databus><key_value_mappings><key name=\"a\"><value type=\"value\">1</value></key></key_value_mappings></databus></core>",
		"<modbus enabled=\"True\" host=\"0.0.0.0\" port=\"502\"><mode>serial</mode></modbus>",
		"<a><b/></a><c/>", "<a>", "", "<?xml version=\"1.0\"?><!-- x --><a x='1'>t<![CDATA[<z>]]></a>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseXML("fuzz.xml", bytes.NewReader(b))
		if err == nil && n == nil {
			t.Fatal("nil tree without an error")
		}
		if err != nil && n != nil {
			t.Fatal("tree and error")
		}
	})
}

// FuzzExpr: any expression compiles or not, and evaluates within the step bound.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		"[random.randint(0,1) for b in range(0,128)]", "random.choice('abc') + str(random.getrandbits(70))",
		"{'a': [1, 2.5, None, True]}", "round(random.uniform(1, 2), 2)", "random.randrange(1, 10, 3)",
		"[x for x in range(10000000)]", "1 // 0", "b'\\x00'",
	} {
		f.Add(s, uint64(1))
	}
	f.Fuzz(func(t *testing.T, src string, seed uint64) {
		e, err := CompileExpr("fuzz", src)
		if err != nil {
			return
		}
		e.Eval(seed)
	})
}

// FuzzLoadTOML: any template.toml and modbus.toml give a profile or an *Error naming the
// file and a line within it, never a panic.
func FuzzLoadTOML(f *testing.F) {
	for _, name := range []string{"template.toml", "modbus.toml", "snmp.toml", "http.toml", "ftp.toml"} {
		b, err := os.ReadFile(filepath.Join(conpotDir, "default-toml", name))
		if err != nil {
			f.Fatal(err)
		}
		if name == "template.toml" {
			f.Add(b, []byte("[modbus]\nenabled = false\n"))
		} else {
			f.Add([]byte("[core.template]\nunit = \"u\"\n"), b)
		}
	}
	f.Add([]byte("[core]\ntemplate = 1\n"), []byte("[modbus]\nenabled = true\nslaves = [{ id = 1, blocks = [{}] }]\n"))
	f.Fuzz(func(t *testing.T, tmpl, proto []byte) {
		fsys := fstest.MapFS{"template.toml": {Data: tmpl}, "modbus.toml": {Data: proto}}
		p, err := Load(fsys, "fuzz", "fuzz")
		if err == nil {
			if p == nil {
				t.Fatal("nil profile without an error")
			}
			return
		}
		var pe *Error
		if errors.As(err, &pe) {
			max := bytes.Count(tmpl, []byte("\n")) + 1
			if pe.File == "fuzz/modbus.toml" {
				max = bytes.Count(proto, []byte("\n")) + 1
			}
			if pe.Line < 1 || pe.Line > max {
				t.Fatalf("error %v: line %d outside 1..%d", err, pe.Line, max)
			}
		}
	})
}
