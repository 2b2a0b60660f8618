package events

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// AppendJSON appends the icsnare JSON form of e (one flat object, DESIGN.md's schema).
func AppendJSON(b []byte, e *protocols.Event) []byte {
	b = append(b, `{"timestamp":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","event_type":`...)
	b = AppendString(b, e.Type)
	b = appendKV(b, "session_id", e.SessionID)
	b = appendKV(b, "protocol", e.Protocol)
	b = appendKV(b, "transport", e.Transport)
	b = appendAddrPort(b, `,"src_ip":"`, `","src_port":`, `,"src_ip":null,"src_port":null`, e.Src)
	b = appendAddrPort(b, `,"dst_ip":"`, `","dst_port":`, `,"dst_ip":null,"dst_port":null`, e.Dst)
	b = appendKV(b, "sensor", e.Sensor)
	b = appendKV(b, "profile", e.Profile)
	if e.Request != nil {
		b = appendPayload(b, "request", e.Request, e.Text)
	}
	if e.Response != nil {
		b = appendPayload(b, "response", e.Response, e.Text)
	}
	for _, f := range e.Fields {
		b = append(b, ',')
		b = AppendString(b, f.Key)
		b = append(b, ':')
		b = AppendValue(b, f.Value)
	}
	return append(b, '}')
}

func appendKV(b []byte, k, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return AppendString(b, v)
}

// appendAddrPort appends an address and port under their keys: ip and port are the
// constant texts before each value, none the text for an invalid ap (no string is built
// per event).
func appendAddrPort(b []byte, ip, port, none string, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, none...)
	}
	b = append(b, ip...)
	b = ap.Addr().Unmap().AppendTo(b)
	b = append(b, port...)
	return strconv.AppendUint(b, uint64(ap.Port()), 10)
}

func appendPayload(b []byte, k string, v []byte, text bool) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	if text {
		return AppendString(b, string(v))
	}
	b = append(b, '"')
	b = hex.AppendEncode(b, v)
	return append(b, '"')
}

// AppendValue appends v, an event field value, as JSON.
func AppendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return AppendString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case []byte:
		b = append(b, '"')
		b = hex.AppendEncode(b, x)
		return append(b, '"')
	case []string:
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, s)
		}
		return append(b, ']')
	case time.Duration:
		return strconv.AppendFloat(b, x.Seconds(), 'f', -1, 64)
	case protocols.JSONAppender:
		return x.AppendJSON(b)
	case fmt.Stringer:
		return AppendString(b, x.String())
	}
	j, err := json.Marshal(v)
	if err != nil {
		return AppendString(b, fmt.Sprint(v))
	}
	return append(b, j...)
}

// AppendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const jsonHex = "0123456789abcdef"
