package syslog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
)

// Limits of RFC 5424's header fields and SD-NAMEs.
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
	maxSDName   = 32
)

// Encoder writes events as RFC 5424 syslog messages. It is pure: bytes and an event in,
// bytes out.
type Encoder struct {
	Facility int      // 0 (kern) … 23 (local7)
	Severity Severity // the severity of each event
	Hostname string   // HOSTNAME; "" is the NILVALUE
	AppName  string   // APP-NAME
	ProcID   string   // PROCID; "" is the NILVALUE
	SDID     string   // the SD-ID of the element carrying the event ("icsnare@32473")
	// Message selects MSG: MessageText (a one-line summary), MessageJSON (the icsnare JSON
	// of the event, after a BOM) or MessageNone.
	Message string
	// MaxValue bounds each PARAM-VALUE in bytes (longer ones are cut at a character
	// boundary and named in the "truncated" parameter); 0 is no bound.
	MaxValue int
	// MaxMessage bounds the whole message; a message that would be longer is written
	// again with shorter values, then without the event's fields, then without MSG.
	MaxMessage int
}

// MSG choices.
const (
	MessageText = "text"
	MessageJSON = "json"
	MessageNone = "none"
)

// Severity picks an event's syslog severity.
type Severity func(e *protocols.Event) int

// Append appends the RFC 5424 message for e (no framing).
func (c *Encoder) Append(b []byte, e *protocols.Event) []byte {
	start := len(b)
	maxValue, fields, msg := c.MaxValue, true, c.Message
	for {
		b = c.appendOnce(b[:start], e, maxValue, fields, msg)
		if c.MaxMessage <= 0 || len(b)-start <= c.MaxMessage {
			return b
		}
		switch {
		case maxValue == 0 || maxValue > 64:
			if maxValue == 0 || maxValue > c.MaxMessage {
				maxValue = c.MaxMessage
			}
			maxValue = max(maxValue/2, 64)
		case fields:
			fields = false
		case msg != MessageNone:
			msg = MessageNone
		default:
			return b // the header and the session fields alone: nothing more to cut
		}
	}
}

func (c *Encoder) appendOnce(b []byte, e *protocols.Event, maxValue int, fields bool, msg string) []byte {
	sev := 6
	if c.Severity != nil {
		sev = c.Severity(e)
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(c.Facility*8+sev), 10)
	b = append(b, ">1 "...)
	if e.Time.IsZero() {
		b = append(b, '-')
	} else {
		b = e.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	}
	b = append(b, ' ')
	b = appendHeaderField(b, c.Hostname, maxHostname)
	b = append(b, ' ')
	b = appendHeaderField(b, c.AppName, maxAppName)
	b = append(b, ' ')
	b = appendHeaderField(b, c.ProcID, maxProcID)
	b = append(b, ' ')
	b = appendHeaderField(b, e.Type, maxMsgID)
	b = append(b, ' ', '[')
	b = append(b, c.SDID...)
	p := params{b: b, max: maxValue}
	p.add("event_type", e.Type)
	p.add("session_id", e.SessionID)
	p.add("protocol", e.Protocol)
	p.add("transport", e.Transport)
	if e.Src.IsValid() {
		p.add("src_ip", e.Src.Addr().Unmap().String())
		p.add("src_port", strconv.Itoa(int(e.Src.Port())))
	}
	if e.Dst.IsValid() {
		p.add("dst_ip", e.Dst.Addr().Unmap().String())
		p.add("dst_port", strconv.Itoa(int(e.Dst.Port())))
	}
	p.add("sensor", e.Sensor)
	p.add("profile", e.Profile)
	if e.Request != nil {
		p.add("request", Payload(e.Request, e.Text))
	}
	if e.Response != nil {
		p.add("response", Payload(e.Response, e.Text))
	}
	if fields {
		for _, f := range e.Fields {
			p.add(f.Key, FieldValue(f.Value))
		}
	} else if len(e.Fields) > 0 {
		p.cut = append(p.cut, "fields")
	}
	if len(p.cut) > 0 {
		p.max = 0
		p.add("truncated", strings.Join(p.cut, ","))
	}
	b = append(p.b, ']')
	switch msg {
	case MessageText:
		b = append(b, ' ')
		b = appendSummary(b, e)
	case MessageJSON:
		b = append(b, " \ufeff"...)
		b = events.AppendJSON(b, e)
	}
	return b
}

// params appends SD-PARAMs, cutting values at max bytes and remembering which.
type params struct {
	b   []byte
	max int
	cut []string
}

func (p *params) add(name, value string) {
	if value == "" {
		return
	}
	p.b = append(p.b, ' ')
	p.b = AppendSDName(p.b, name)
	p.b = append(p.b, '=', '"')
	if p.max > 0 && len(value) > p.max {
		n := p.max
		for n > 0 && !utf8.RuneStart(value[n]) {
			n--
		}
		value = value[:n]
		p.cut = append(p.cut, string(AppendSDName(nil, name)))
	}
	p.b = AppendParamValue(p.b, value)
	p.b = append(p.b, '"')
}

// Payload is a request or response as a PARAM-VALUE: the text of a text protocol, the hex
// digits of any other (as the icsnare JSON writes them).
func Payload(b []byte, text bool) string {
	if text {
		return string(b)
	}
	return fmt.Sprintf("%x", b)
}

// FieldValue is an event field's value as a PARAM-VALUE: strings as they are, bytes as hex
// digits, everything else as its icsnare JSON.
func FieldValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return fmt.Sprintf("%x", x)
	case nil:
		return "null"
	}
	return string(events.AppendValue(nil, v))
}

// AppendParamValue appends s as a PARAM-VALUE (without the quotes): '"', '\' and ']' are
// escaped with a backslash (RFC 5424 §6.3.3), invalid UTF-8 becomes U+FFFD.
func AppendParamValue(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' || c == ']' {
				b = append(b, '\\')
			}
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// sdNameChar reports whether c may appear in an SD-NAME: printable US-ASCII except '=',
// ']', '"' and the space (RFC 5424 §6.3.2).
func sdNameChar(c byte) bool {
	return c > 32 && c < 127 && c != '=' && c != ']' && c != '"'
}

// AppendSDName appends name as an SD-NAME (a PARAM-NAME): at most 32 characters, each
// forbidden one replaced by '_'; an empty name is "_".
func AppendSDName(b []byte, name string) []byte {
	if name == "" {
		return append(b, '_')
	}
	for i := 0; i < len(name) && i < maxSDName; i++ {
		if c := name[i]; sdNameChar(c) {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	return b
}

// appendHeaderField appends a header field: printable US-ASCII (others become '_'), at
// most n characters, "-" when empty.
func appendHeaderField(b []byte, s string, n int) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s) && i < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	return b
}

// appendSummary writes MSG's one-line summary: "<type> <src> -> <dst>", printable ASCII.
func appendSummary(b []byte, e *protocols.Event) []byte {
	b = appendHeaderField(b, e.Type, 256)
	if e.Src.IsValid() {
		b = append(b, ' ')
		b = e.Src.AppendTo(b)
	}
	if e.Dst.IsValid() {
		b = append(b, " -> "...)
		b = e.Dst.AppendTo(b)
	}
	return b
}

// ValidSDID checks an SD-ID of the enterprise form name@number (RFC 5424 §6.3.2, §7.2.2).
func ValidSDID(id string) error {
	name, pen, ok := strings.Cut(id, "@")
	if !ok || name == "" || pen == "" {
		return fmt.Errorf("SD-ID %q is not name@enterprise-number", id)
	}
	if len(id) > maxSDName {
		return fmt.Errorf("SD-ID %q is longer than %d characters", id, maxSDName)
	}
	for i := range len(name) {
		if !sdNameChar(name[i]) || name[i] == '@' {
			return fmt.Errorf("SD-ID %q: %q may not appear in its name", id, name[i])
		}
	}
	for i, part := range strings.Split(pen, ".") {
		if part == "" || strings.Trim(part, "0123456789") != "" || (i == 0 && part[0] == '0') {
			return fmt.Errorf("SD-ID %q: %q is not a private enterprise number", id, pen)
		}
	}
	return nil
}

// AppendOctetCounted frames msg for a stream transport (RFC 6587 §3.4.1, RFC 5425 §4.3):
// its length in decimal, a space, the message.
func AppendOctetCounted(b, msg []byte) []byte {
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

// Message is an RFC 5424 message as ParseMessage reads it.
type Message struct {
	Priority                                    int
	Timestamp, Hostname, AppName, ProcID, MsgID string
	SD                                          []Element
	Msg                                         string
}

// Element is one SD-ELEMENT.
type Element struct {
	ID     string
	Params []Param
}

// Param is one SD-PARAM, its value unescaped.
type Param struct{ Name, Value string }

var errSyntax = errors.New("not an RFC 5424 message")

// ParseMessage reads an RFC 5424 message (without framing). It checks the syntax of the
// header and the structured data strictly; MSG is the rest, a leading BOM removed.
func ParseMessage(s string) (*Message, error) {
	var m Message
	if len(s) < 2 || s[0] != '<' {
		return nil, fmt.Errorf("%w: no PRI", errSyntax)
	}
	end := strings.IndexByte(s, '>')
	if end < 2 || end > 4 {
		return nil, fmt.Errorf("%w: bad PRI", errSyntax)
	}
	pri, err := strconv.Atoi(s[1:end])
	if err != nil || pri > 191 || (end > 2 && s[1] == '0') {
		return nil, fmt.Errorf("%w: bad PRI %q", errSyntax, s[1:end])
	}
	m.Priority = pri
	s = s[end+1:]
	if !strings.HasPrefix(s, "1 ") {
		return nil, fmt.Errorf("%w: version is not 1", errSyntax)
	}
	s = s[2:]
	fields := []*string{&m.Timestamp, &m.Hostname, &m.AppName, &m.ProcID, &m.MsgID}
	limits := []int{64, maxHostname, maxAppName, maxProcID, maxMsgID}
	for i, f := range fields {
		sp := strings.IndexByte(s, ' ')
		if sp <= 0 || sp > limits[i] {
			return nil, fmt.Errorf("%w: header field %d", errSyntax, i+2)
		}
		for j := range sp {
			if s[j] < 33 || s[j] > 126 {
				return nil, fmt.Errorf("%w: header field %d has a non-printable character", errSyntax, i+2)
			}
		}
		*f = s[:sp]
		s = s[sp+1:]
	}
	if m.Timestamp != "-" {
		if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
			return nil, fmt.Errorf("%w: TIMESTAMP: %v", errSyntax, err)
		}
	}
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	} else {
		var err error
		if m.SD, s, err = ParseStructuredData(s); err != nil {
			return nil, err
		}
	}
	if s != "" {
		if s[0] != ' ' {
			return nil, fmt.Errorf("%w: no space before MSG", errSyntax)
		}
		m.Msg = strings.TrimPrefix(s[1:], "\ufeff")
	}
	return &m, nil
}

// ParseStructuredData reads one or more SD-ELEMENTs from the start of s and returns them
// with the rest of s.
func ParseStructuredData(s string) ([]Element, string, error) {
	var out []Element
	for strings.HasPrefix(s, "[") {
		s = s[1:]
		n := sdNameLen(s)
		if n == 0 {
			return nil, "", fmt.Errorf("%w: empty SD-ID", errSyntax)
		}
		el := Element{ID: s[:n]}
		s = s[n:]
		for strings.HasPrefix(s, " ") {
			s = s[1:]
			n := sdNameLen(s)
			if n == 0 || n >= len(s) || s[n] != '=' || n+1 >= len(s) || s[n+1] != '"' {
				return nil, "", fmt.Errorf("%w: bad SD-PARAM in [%s", errSyntax, el.ID)
			}
			name := s[:n]
			s = s[n+2:]
			var v strings.Builder
			closed := false
			for i := 0; i < len(s); i++ {
				switch c := s[i]; {
				case c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\' || s[i+1] == ']'):
					v.WriteByte(s[i+1])
					i++
				case c == '"':
					s, closed = s[i+1:], true
				case c == ']':
					return nil, "", fmt.Errorf("%w: unescaped ']' in the value of %s", errSyntax, name)
				default:
					v.WriteByte(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, "", fmt.Errorf("%w: unterminated value of %s", errSyntax, name)
			}
			if !utf8.ValidString(v.String()) {
				return nil, "", fmt.Errorf("%w: the value of %s is not UTF-8", errSyntax, name)
			}
			el.Params = append(el.Params, Param{Name: name, Value: v.String()})
		}
		if !strings.HasPrefix(s, "]") {
			return nil, "", fmt.Errorf("%w: unterminated SD-ELEMENT [%s", errSyntax, el.ID)
		}
		s = s[1:]
		out = append(out, el)
	}
	if len(out) == 0 {
		return nil, "", fmt.Errorf("%w: no STRUCTURED-DATA", errSyntax)
	}
	return out, s, nil
}

// sdNameLen returns the length of the SD-NAME at the start of s (0 when there is none or it
// is longer than 32 characters).
func sdNameLen(s string) int {
	n := 0
	for n < len(s) && sdNameChar(s[n]) {
		n++
	}
	if n > maxSDName {
		return 0
	}
	return n
}
