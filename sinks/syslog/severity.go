package syslog

import (
	"fmt"
	"path"
	"strings"

	"github.com/icsnare/icsnare/protocols"
)

// Severities of RFC 5424 §6.2.1, by name.
var severities = map[string]int{
	"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7,
}

// Facilities of RFC 5424 §6.2.1, by name.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
	"local5": 21, "local6": 22, "local7": 23,
}

// Rule matches events: a path.Match pattern on the event type, and optionally one field
// whose value (as text) must equal Value.
type Rule struct {
	Type       string
	Key, Value string
}

// ParseRule reads "pattern" or "pattern key=value" ("modbus.request function_code=6").
func ParseRule(s string) (Rule, error) {
	typ, cond, _ := strings.Cut(strings.TrimSpace(s), " ")
	r := Rule{Type: typ}
	if typ == "" {
		return r, fmt.Errorf("empty rule")
	}
	if _, err := path.Match(typ, ""); err != nil {
		return r, fmt.Errorf("rule %q: bad pattern: %w", s, err)
	}
	if cond = strings.TrimSpace(cond); cond != "" {
		var ok bool
		if r.Key, r.Value, ok = strings.Cut(cond, "="); !ok || r.Key == "" {
			return r, fmt.Errorf("rule %q: the condition is not key=value", s)
		}
	}
	return r, nil
}

// Match reports whether e matches the rule.
func (r Rule) Match(e *protocols.Event) bool {
	if ok, _ := path.Match(r.Type, e.Type); !ok {
		return false
	}
	if r.Key == "" {
		return true
	}
	for _, f := range e.Fields {
		if f.Key == r.Key && FieldValue(f.Value) == r.Value {
			return true
		}
	}
	return false
}

// Classifier gives events matching Warning the warning severity, those matching Notice
// notice, and every other event Default.
type Classifier struct {
	Warning, Notice []Rule
	Default         int
}

// Severity implements Severity.
func (c *Classifier) Severity(e *protocols.Event) int {
	for _, r := range c.Warning {
		if r.Match(e) {
			return severities["warning"]
		}
	}
	for _, r := range c.Notice {
		if r.Match(e) {
			return severities["notice"]
		}
	}
	return c.Default
}
