package guardianast

import (
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the zone database, so the clock works without the machine's files
)

// stateZones maps US state codes to the time zone most of the state keeps.
var stateZones = map[string]string{
	"AL": "America/Chicago", "AK": "America/Anchorage", "AZ": "America/Phoenix", "AR": "America/Chicago",
	"CA": "America/Los_Angeles", "CO": "America/Denver", "CT": "America/New_York", "DE": "America/New_York",
	"DC": "America/New_York", "FL": "America/New_York", "GA": "America/New_York", "HI": "Pacific/Honolulu",
	"ID": "America/Boise", "IL": "America/Chicago", "IN": "America/Indiana/Indianapolis", "IA": "America/Chicago",
	"KS": "America/Chicago", "KY": "America/New_York", "LA": "America/Chicago", "ME": "America/New_York",
	"MD": "America/New_York", "MA": "America/New_York", "MI": "America/Detroit", "MN": "America/Chicago",
	"MS": "America/Chicago", "MO": "America/Chicago", "MT": "America/Denver", "NE": "America/Chicago",
	"NV": "America/Los_Angeles", "NH": "America/New_York", "NJ": "America/New_York", "NM": "America/Denver",
	"NY": "America/New_York", "NC": "America/New_York", "ND": "America/Chicago", "OH": "America/New_York",
	"OK": "America/Chicago", "OR": "America/Los_Angeles", "PA": "America/New_York", "RI": "America/New_York",
	"SC": "America/New_York", "SD": "America/Chicago", "TN": "America/Chicago", "TX": "America/Chicago",
	"UT": "America/Denver", "VT": "America/New_York", "VA": "America/New_York", "WA": "America/Los_Angeles",
	"WV": "America/New_York", "WI": "America/Chicago", "WY": "America/Denver", "PR": "America/Puerto_Rico",
}

var zoneCache sync.Map // zone name → *time.Location

// stationZone finds the time zone of a station from its header: a line ending in a US
// state code after a comma ("AMARILLO, TX"). It returns UTC when there is none.
func stationZone(header string) *time.Location {
	for _, line := range strings.Split(header, "\n") {
		line = strings.TrimSpace(line)
		i := strings.LastIndexByte(line, ',')
		if i < 0 {
			continue
		}
		name, ok := stateZones[strings.ToUpper(strings.TrimSpace(line[i+1:]))]
		if !ok {
			continue
		}
		if loc, ok := zoneCache.Load(name); ok {
			return loc.(*time.Location)
		}
		loc, err := time.LoadLocation(name)
		if err != nil {
			return time.UTC
		}
		zoneCache.Store(name, loc)
		return loc
	}
	return time.UTC
}
