package sensor

import (
	"strings"
	"testing"
)

// TestCheckRefuses covers what Check refuses beyond the command-line cases in
// cmd/icsnare: ports this process may not bind and protocol options that name no protocol.
func TestCheckRefuses(t *testing.T) {
	cases := []struct {
		name    string
		canBind bool
		mutate  func(*Config)
		want    string // "" for no error
	}{
		{"privileged ports without the capability", false, nil,
			"ports below 1024 need root or CAP_NET_BIND_SERVICE: echotest tcp/7, echotest udp/7"},
		{"privileged ports with the capability", true, nil, ""},
		{"offset past the privileged range", false, func(c *Config) { c.Bind.PortOffset = 2000 }, ""},
		{"options of no protocol", true, func(c *Config) { c.Protocols["nosuch"] = struct{}{} }, `protocols.nosuch: no protocol "nosuch"`},
		{"unknown group", true, func(c *Config) { c.Privileges.Group = "icsnare-no-such-group" }, `config: privileges.group "icsnare-no-such-group"`},
	}
	old := canBindBelow
	t.Cleanup(func() { canBindBelow = old })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			canBindBelow = func() (bool, int) { return c.canBind, 1024 }
			cfg := DefaultConfig()
			cfg.Hosts = []HostRule{{Addresses: []string{"127.30.0.1"}, Profile: writeProfile(t, "x")}}
			cfg.Privileges.User, cfg.Metrics.Listen = "", ""
			if c.mutate != nil {
				c.mutate(&cfg)
			}
			_, err := Check(cfg)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// TestKeyPos finds the line of table headers, keys and dotted keys.
func TestKeyPos(t *testing.T) {
	src := "sensor_id = \"x\"\n\n[protocols.snmp]  # extra MIBs\nmibpath = []\n[ metrics ]\n\"listen\" = \"\"\nbind.address = \"::1\"\n"
	cases := []struct {
		key  []string
		want string
	}{
		{[]string{"sensor_id"}, "f:1"},
		{[]string{"protocols", "snmp"}, "f:3"},
		{[]string{"protocols", "snmp", "mibpath"}, "f:4"},
		{[]string{"metrics", "listen"}, "f:6"},
		{[]string{"metrics", "bind", "address"}, "f:7"},
		{[]string{"nothere"}, "f"},
	}
	for _, c := range cases {
		if got := keyPos("f", src, c.key...); got != c.want {
			t.Errorf("keyPos(%v) = %q, want %q", c.key, got, c.want)
		}
	}
}
