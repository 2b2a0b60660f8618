package ipmi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

func TestConfigConpotUsers(t *testing.T) {
	svc, _ := testService(t, nil)
	c := svc.cfg
	want := []user{
		{1, "Administrator", []byte("Password"), 4, true, true},
		{2, "Operator", []byte("OpPassword"), 3, false, true},
		{3, "User1", []byte("U1Password"), 2, true, true},
		{4, "User2", []byte("U2Password"), 2, false, true},
		{5, "User3", []byte("U3Password"), 1, true, true},
	}
	if len(c.users) != len(want) {
		t.Fatalf("%d users", len(c.users))
	}
	for i, u := range c.users {
		w := want[i]
		if u.id != w.id || u.name != w.name || string(u.password) != string(w.password) || u.priv != w.priv || u.active != w.active || u.fixed != w.fixed {
			t.Errorf("user %d: %+v, want %+v", i+1, *u, w)
		}
	}
	if c.deviceNameKey != "SystemName" || c.timeout != defaultTimeout || len(c.suites) != 6 || c.userSlots != 10 {
		t.Errorf("config %+v", c)
	}
}

func TestConfigKnobs(t *testing.T) {
	svc, _ := testService(t, func(s string) string {
		s = strings.Replace(s, "<device_name>SystemName</device_name>", `<device_name>SystemName</device_name>
        <manufacturer_id>674</manufacturer_id>
        <product_id>0x0100</product_id>
        <device_id>0x20</device_id>
        <device_revision>1</device_revision>
        <firmware>2.83</firmware>`, 1)
		return strings.Replace(s, "<user_list>", `<cipher_suites>0, 3,17</cipher_suites>
    <session_timeout>120</session_timeout>
    <max_sessions>4</max_sessions>
    <mac_oui>D0:94:66</mac_oui>
    <user_list>`, 1)
	})
	c := svc.cfg
	if c.manufacturer != 674 || c.product != 0x100 || c.fwMajor != 2 || c.fwMinor != 0x83 || c.timeout != 120*time.Second ||
		c.maxPerHost != 4 || c.macOUI != [3]byte{0xD0, 0x94, 0x66} || len(c.suites) != 3 || c.suites[0].id != 0 {
		t.Errorf("config %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"privilege 5", "<privilege>4</privilege>", "<privilege>5</privilege>", "privilege"},
		{"bad active", "<active>false</active>", "<active>maybe</active>", "active"},
		{"long name", "<user_name>User3</user_name>", "<user_name>" + strings.Repeat("x", 17) + "</user_name>", "user_name"},
		{"long password", "<password>Password</password>", "<password>" + strings.Repeat("p", 21) + "</password>", "password"},
		{"duplicate user", "<user_name>User3</user_name>", "<user_name>User1</user_name>", "twice"},
		{"unknown suite", "<user_list>", "<cipher_suites>3,11</cipher_suites><user_list>", "cipher suite 11"},
		{"bad firmware", "</device_info>", "<firmware>1.7</firmware></device_info>", "firmware"},
		{"bad timeout", "<user_list>", "<session_timeout>0</session_timeout><user_list>", "session timeout"},
		{"bad OUI", "<user_list>", "<mac_oui>zz:00:00</mac_oui><user_list>", "OUI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testProfile(t, func(s string) string { return strings.Replace(s, tc.old, tc.new, 1) })
			_, err := protocol{}.Configure(p.Sections[Name], nil)
			var pe *profiles.Error
			if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) || pe.Line == 0 {
				t.Fatalf("error %v, want a *profiles.Error with a line mentioning %q", err, tc.want)
			}
		})
	}
}

func TestConfigWarnings(t *testing.T) {
	p := testProfile(t, func(s string) string {
		s = strings.Replace(s, "<device_name>SystemName</device_name>", "<device_name>NoSuchKey</device_name>", 1)
		return strings.Replace(s, "<user_list>", "<oem_magic>1</oem_magic><user_list>", 1)
	})
	if _, err := (protocol{}).Configure(p.Sections[Name], nil); err != nil {
		t.Fatal(err)
	}
	w := strings.Join(p.Warnings(), "\n")
	if !strings.Contains(w, "oem_magic") || !strings.Contains(w, "NoSuchKey") || !strings.Contains(w, "ipmi.xml:") {
		t.Errorf("warnings %q", w)
	}
}
