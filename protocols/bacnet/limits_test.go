package bacnet

import (
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
)

// classOf is the class the sensor (and the XDP program) puts a datagram in.
func classOf(limits []protocols.RateLimit, b []byte) string {
	for _, l := range limits {
		for _, p := range l.Match {
			if ratelimit.Matches(p, b) {
				return l.Class
			}
		}
	}
	return ""
}

func TestRateClasses(t *testing.T) {
	sv, _ := testService(t, "controller")
	limits := sv.RateLimits()
	if len(limits) != 2 || limits[0].Class != "discovery" || limits[0].PerSource != 600 || limits[1].Class != "confirmed" || limits[1].Global != 120000 {
		t.Fatalf("limits %+v", limits)
	}
	byName := append(appendTagHeader([]byte{0x10, svcWhoHas}, 3, true, 4), 0, 'S', 'A', 'T')
	for _, tc := range []struct {
		name string
		req  []byte
		want string
	}{
		{"Who-Is, broadcast", broadcastFrame(whoIs(-1, 0)), "discovery"},
		{"Who-Is with a range, unicast", unicast(whoIs(1, 100)), "discovery"},
		{"Who-Is to every network", unhex(t, "810b000c0120ffff00ff1008"), "discovery"},
		{"Who-Has by name", broadcastFrame(byName), "discovery"},
		{"nmap's ReadProperty", unhex(t, "810a001101040005010c0c023fffff194b"), "confirmed"},
		{"ReadPropertyMultiple", unicast(confirmedReq(2, svcReadPropertyMultiple, 5, rpmData(map[objectID][]uint32{testDevice: {propAll}}, []objectID{testDevice}))), "confirmed"},
		{"a segment of a request", segmentedReq(3, 1, true, svcWriteProperty, []byte{1}), "confirmed"},
		{"Segment-ACK", unicast(appendSegmentACK(nil, 3, 0, 4, false)), ""},
		{"I-Am", unhex(t, "810b00150100 1000 c4020003e8 2205c4 9103 2203e7"), ""},
		{"routed ReadProperty", unhex(t, "810a0017010c000503aabbcc0005010c0c023fffff194b"), ""},
		{"Register-Foreign-Device", unhex(t, "81050006003c"), ""},
		{"Who-Is-Router-To-Network", unhex(t, "810b0007018000"), ""},
	} {
		if got := classOf(limits, tc.req); got != tc.want {
			t.Errorf("%s (%x): class %q, want %q", tc.name, tc.req, got, tc.want)
		}
	}
}

func TestRateLimitKnob(t *testing.T) {
	sv, _, err := section(t, "", `<bacnet enabled="True"><rate_limit class="discovery">0;0</rate_limit><rate_limit class="confirmed">5;100</rate_limit></bacnet>`)
	if err != nil {
		t.Fatal(err)
	}
	l := sv.RateLimits()
	if len(l) != 1 || l[0].Class != "confirmed" || l[0].PerSource != 5 || l[0].Global != 100 {
		t.Fatalf("limits %+v", l)
	}
	for body, want := range map[string]string{
		`<bacnet enabled="True"><rate_limit class="who-is">1;1</rate_limit></bacnet>`:     "want discovery or confirmed",
		`<bacnet enabled="True"><rate_limit class="confirmed">many</rate_limit></bacnet>`: "PER-SOURCE;GLOBAL",
	} {
		if _, _, err := section(t, "", body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", body, err)
		}
	}
}
