package sensor

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/icsnare/icsnare/protocols"
)

// secretKey matches the option names whose values PrintTOML masks: passwords, pass
// phrases, shared secrets and tokens of every protocol and sink.
var secretKey = regexp.MustCompile(`(?i)^\s*[a-z0-9_]*(pass|secret|token|nkey_seed)[a-z0-9_]*\s*=`)

// pathKey matches option names that hold where a secret is (a file), not the secret.
var pathKey = regexp.MustCompile(`_(file|dir|path)\s*=$`)

// quotedURL finds a quoted URL with a password in its user information.
var quotedURL = regexp.MustCompile(`"[a-z][a-z0-9+.-]*://[^"@/]*:[^"@/]*@[^"]*"`)

// maskedValue stands for a secret in PrintTOML's output.
const maskedValue = `"********"`

// PrintTOML writes the effective configuration as TOML: every option with its value
// (defaults filled in, every registered protocol's table included), with passwords,
// secrets and tokens masked, so it can be shown or attached to a bug report. The output
// loads back with LoadConfig, secrets aside.
func (c Config) PrintTOML(w io.Writer) error {
	all := map[string]any{}
	for _, name := range protocols.Names() {
		o, err := c.protocolOptions(name)
		if err != nil {
			return err
		}
		if o != nil {
			all[name] = o
		}
	}
	doc := struct {
		Config
		Protocols map[string]any `toml:"protocols"`
		Sinks     map[string]any `toml:"sinks,omitempty"`
	}{c, all, c.Sinks}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		return fmt.Errorf("config print: %w", err)
	}
	for line := range strings.SplitAfterSeq(b.String(), "\n") {
		line = maskLine(line)
		if _, err := io.WriteString(w, line); err != nil {
			return fmt.Errorf("config print: %w", err)
		}
	}
	return nil
}

// maskLine replaces the value of a secret key, and the password of a URL, in one line of
// TOML.
func maskLine(line string) string {
	if m := secretKey.FindStringIndex(line); m != nil && !pathKey.MatchString(line[:m[1]]) {
		val := strings.TrimSpace(line[m[1]:])
		if val != `""` && val != "" {
			nl := ""
			if strings.HasSuffix(line, "\n") {
				nl = "\n"
			}
			return line[:m[1]] + " " + maskedValue + nl
		}
		return line
	}
	return quotedURL.ReplaceAllStringFunc(line, func(q string) string {
		s, err := strconv.Unquote(q)
		if err != nil {
			return maskedValue
		}
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			return q
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
		return strconv.Quote(u.String())
	})
}
