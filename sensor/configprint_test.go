package sensor

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/icsnare/icsnare/protocols/all"
)

// TestPrintTOMLLoadsBack: the printed configuration of a file with SNMPv3 users names
// every registered protocol's table, masks the pass phrases, and loads back unchanged.
func TestPrintTOMLLoadsBack(t *testing.T) {
	src := `sensor_id = "plant-7"

[[hosts]]
addresses = ["127.74.0.0/24"]
profile = "default"

[limits]
idle_timeout = "45s"

[[protocols.snmp.users]]
name = "ops"
access = "ro"
auth = "SHA"
authpass = "correct horse"
priv = "AES"
privpass = "battery staple"
`
	path := filepath.Join(t.TempDir(), "in.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := cfg.PrintTOML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{`sensor_id = "plant-7"`, `idle_timeout = "45s"`, `authpass = "********"`,
		`privpass = "********"`, "[protocols.modbus]", "[protocols.snmp]", `name = "ops"`} {
		if !strings.Contains(out, want) {
			t.Errorf("printed config lacks %s", want)
		}
	}
	for _, secret := range []string{"correct horse", "battery staple"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed config shows the secret %q", secret)
		}
	}
	// With the secrets put back, the printed file loads and prints the same.
	back := strings.Replace(out, `authpass = "********"`, `authpass = "correct horse"`, 1)
	back = strings.Replace(back, `privpass = "********"`, `privpass = "battery staple"`, 1)
	path2 := filepath.Join(t.TempDir(), "out.toml")
	if err := os.WriteFile(path2, []byte(back), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2, err := LoadConfig(path2)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, back)
	}
	var b2 bytes.Buffer
	if err := cfg2.PrintTOML(&b2); err != nil {
		t.Fatal(err)
	}
	if b2.String() != out {
		t.Errorf("printing the printed config changed it:\n%s\nvs\n%s", b2.String(), out)
	}
}

func TestMaskLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{`  authpass = "s3cret-pw"` + "\n", `  authpass = "********"` + "\n"},
		{`  token = ""`, `  token = ""`},
		{`  password_file = "/etc/x"`, `  password_file = "/etc/x"`},
		{`  secret = "x"`, `  secret = "********"`},
		{`  url = "nats://ops:hunter2@10.0.0.1:4222"`, `  url = "nats://ops:REDACTED@10.0.0.1:4222"`},
		{`  url = "nats://10.0.0.1:4222"`, `  url = "nats://10.0.0.1:4222"`},
		{`  community = "public"`, `  community = "public"`},
	}
	for _, tt := range tests {
		if got := maskLine(tt.in); got != tt.want {
			t.Errorf("maskLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
