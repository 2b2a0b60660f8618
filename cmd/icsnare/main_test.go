package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReportsFileAndLine(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "modbus"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte("<core>\n<databus><key_value_mappings>\n<key name=\"x\">\n<value type=\"value\">[1, 2</value></key>\n</key_value_mappings></databus></core>\n"), 0o644)
	notDir := filepath.Join(dir, "template.xml")
	openSeed := t.TempDir()
	os.WriteFile(filepath.Join(openSeed, "seed"), []byte(strings.Repeat("5", 64)), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"state dir is a file", []string{"check", "--state", notDir}, 2, "is not a directory"},
		{"readable seed file", []string{"check", "--state", openSeed}, 2, "chmod 600"},
		{"new state dir ok", []string{"check", "--state", filepath.Join(t.TempDir(), "new")}, 0, "ok"},
		{"broken template", []string{"check", "--profile", dir}, 2, dir + "/template.xml:4: <value>"},
		{"missing profile", []string{"check", "--profile", "no-such-profile"}, 2, "no embedded profile"},
		{"bad listen", []string{"check", "--listen", "10.0.0.1/33"}, 2, "10.0.0.1/33"},
		{"default ok", []string{"check", "--port-offset", "30000"}, 0, "ok"},
		{"run refuses broken template", []string{"run", "--profile", dir, "--port-offset", "30000", "--metrics", "off"}, 2, "template.xml:4"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"version", []string{"version"}, 0, "icsnare "},
		{"config print", []string{"config", "print", "--port-offset", "30000", "--sensor-id", "plant-9", "--state", openSeed + "-new"}, 0, `sensor_id = "plant-9"`},
		{"config print default metrics port", []string{"config", "print", "--state", openSeed + "-new"}, 0, `listen = "127.0.0.1:10108"`},
		{"config print refuses what run refuses", []string{"config", "print", "--listen", "10.0.0.1/33"}, 2, "10.0.0.1/33"},
		{"config without print", []string{"config"}, 2, "print       print the effective configuration"},
		{"bad log format", []string{"check", "--log-format", "xml"}, 2, `--log-format "xml": want text or json`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), c.want) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", c.want, out.String(), errb.String())
			}
		})
	}
}

func TestCheckOnBrokenModbusSection(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "modbus"), 0o755)
	os.WriteFile(filepath.Join(dir, "template.xml"), []byte("<core><databus><key_value_mappings></key_value_mappings></databus></core>"), 0o644)
	os.WriteFile(filepath.Join(dir, "modbus", "modbus.xml"), []byte("<modbus enabled=\"True\">\n  <mode>sideways</mode>\n</modbus>\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--profile", dir}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "modbus.xml:2") {
		t.Fatalf("error does not name modbus.xml:2: %s", errb.String())
	}
}
