package ipmi

import (
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// TestRateClasses classifies real datagrams with the sensor's own limiter (the XDP
// program's classification, checked against it in bpf/).
func TestRateClasses(t *testing.T) {
	svc, h := unitBMC(t, withV15)
	var rules []ratelimit.Rule
	for _, l := range svc.RateLimits() {
		r := ratelimit.Rule{Port: uint16(l.Port), Class: l.Class, Match: l.Match, PerSource: l.PerSource, Global: l.Global}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	lim, err := ratelimit.New(rules, ratelimit.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFlow(t, svc, h, "198.51.100.7:40000")
	c := login(t, f, 17, "Administrator", "Password", privAdmin)
	v15, _ := v15Login(t, newFlow(t, svc, h, "198.51.100.7:40001"), authMD5, "Administrator", "Password", privAdmin)
	name := make([]byte, 16)
	for _, tc := range []struct {
		name, class string
		pkt         []byte
	}{
		{"ping", "ping", unhex(t, "0600ff06 000011be 802a0000")},
		{"ping wanting an ACK", "ping", unhex(t, "06000506 000011be 80070000")},
		{"nmap auth caps", "presession", unhex(t, "0600ff07 00 00000000 00000000 09 2018c8 81 00 38 8e04 b5")},
		{"session challenge", "presession", appendV15NoAuth(nil, lanMsg(netFnApp, 0x39, 1, append([]byte{authMD5}, name...)...))},
		{"RMCP+ cipher suites", "presession", v2Packet(payloadIPMI, 0, 0, lanMsg(netFnApp, 0x54, 0, 0x0e, 0, 0x80))},
		{"open session", "handshake", v2Packet(payloadOpenReq, 0, 0, unhex(t, "01000000 04030201 00000008 01000000 01000008 01000000 02000008 01000000"))},
		{"RAKP 1", "handshake", v2Packet(payloadRAKP1, 0, 0, unhex(t, "02000000 04030201 00112233445566778899aabbccddeeff 14 0000 00"))},
		{"RAKP 3", "handshake", v2Packet(payloadRAKP3, 0, 0, unhex(t, "03000000 04030201"))},
		{"RMCP+ session message", "", c.packet(netFnChassis, 0x01)},
		{"v1.5 session message", "", v15.packet(netFnChassis, 0x01)},
	} {
		if got := lim.Classify(Port, tc.pkt); got != tc.class {
			t.Errorf("%s: class %q, want %q", tc.name, got, tc.class)
		}
	}
}

func TestRateLimitKnob(t *testing.T) {
	svc, _ := testService(t, func(s string) string {
		return strings.Replace(s, "<user_list>", `<rate_limit class="handshake">20;600</rate_limit>
    <rate_limit class="ping">0;0</rate_limit>
    <user_list>`, 1)
	})
	got := map[string][2]int{}
	for _, l := range svc.RateLimits() {
		got[l.Class] = [2]int{l.PerSource, l.Global}
	}
	if len(got) != 2 || got["handshake"] != [2]int{20, 600} || got["presession"] != [2]int{300, 6000} {
		t.Errorf("limits %v", got)
	}
	for _, bad := range []string{`<rate_limit class="bulk">1;1</rate_limit>`, `<rate_limit class="ping">60</rate_limit>`} {
		p := testProfile(t, func(s string) string { return strings.Replace(s, "<user_list>", bad+"<user_list>", 1) })
		if _, err := (protocol{}).Configure(p.Sections[Name], nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
