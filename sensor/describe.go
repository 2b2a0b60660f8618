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
		d := devs[h.Profile]
		var eps []string
		for ep, ds := range d.services {
			eps = append(eps, fmt.Sprintf("%s %s", ds.protocol, ep))
		}
		sort.Strings(eps)
		out = append(out, fmt.Sprintf("hosts %s: profile %s (%s) serves %s", strings.Join(h.Addresses, ", "),
			d.profile.Name, d.profile.Source, strings.Join(eps, ", ")))
	}
	out = append(out, fmt.Sprintf("hosts kept in memory: at most %d (%s); idle ones are evicted and regenerated",
		r.Hosts.MaxHosts, r.Hosts.Reason))
	limits, _, _ := RateLimitPlan(cfg, devs) // Check already planned them without error
	return append(out, limits...)
}
