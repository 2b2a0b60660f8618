package sensor

import (
	"fmt"
	"sort"
	"strings"
)

// ConfigError marks an error in the configuration or a profile (exit status 2).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Describe summarises what the checked configuration serves and the UDP rate limits it
// applies, for `icsnare check`.
func (r *Report) Describe() []string {
	cfg, devs := r.cfg, r.profiles
	var out []string
	for _, h := range cfg.Hosts {
		var total float64
		for _, w := range h.Profiles {
			total += w
		}
		density := ""
		if h.Density > 0 && h.Density < 1 {
			density = fmt.Sprintf(" (%.3g%% of the addresses are devices)", 100*h.Density)
		}
		for _, name := range h.ProfileNames() {
			d := devs[name]
			var eps []string
			for ep, ds := range d.services {
				eps = append(eps, fmt.Sprintf("%s %s", ds.protocol, ep))
			}
			sort.Strings(eps)
			share := ""
			if total > 0 {
				share = fmt.Sprintf(" on %.3g%% of them", 100*h.Profiles[name]/total)
			}
			out = append(out, fmt.Sprintf("hosts %s%s: profile %s (%s)%s serves %s", strings.Join(h.Addresses, ", "), density,
				d.profile.Name, d.profile.Source, share, strings.Join(eps, ", ")))
		}
	}
	out = append(out, fmt.Sprintf("hosts kept in memory: at most %d (%s); idle ones are evicted and regenerated",
		r.Hosts.MaxHosts, r.Hosts.Reason))
	out = append(out, r.identityPlan()...)
	limits, _, _ := RateLimitPlan(cfg, devs) // Check already planned them without error
	return append(out, limits...)
}
