package guardianast

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Control characters of the TLS-350 serial interface.
const (
	SOH = 0x01 // starts every command and every framed response
	ETX = 0x03 // ends a framed response
)

// MaxCommand bounds one command after its SOH: a function code, a tank number and, for the
// set commands, a 20-character label, with room to spare. Longer input is refused with the
// error reply and skipped up to the next SOH or line end.
const MaxCommand = 64

// ErrorReply is the gauge's answer to a command it does not know or cannot parse.
const ErrorReply = "9999FF1B"

// Command kinds; the metrics label set (bounded).
const (
	KindSystemStatus = "system_status"      // I101
	KindAlarmHistory = "alarm_history"      // I111
	KindInventory    = "inventory"          // I201
	KindDelivery     = "delivery"           // I202
	KindLeak         = "leak_detect"        // I203
	KindShift        = "shift"              // I204
	KindStatus       = "tank_status"        // I205
	KindTankAlarms   = "tank_alarm_history" // I206
	KindRevision     = "revision"           // I902
	KindSetProduct   = "set_product"        // S602
	KindUnknown      = "unknown"            // anything else: the error reply
	KindGarbage      = "garbage"            // bytes outside a command (no SOH)
)

// functions maps the inquiry function codes this gauge answers to their kinds.
var functions = map[string]string{
	"101": KindSystemStatus,
	"111": KindAlarmHistory,
	"201": KindInventory,
	"202": KindDelivery,
	"203": KindLeak,
	"204": KindShift,
	"205": KindStatus,
	"206": KindTankAlarms,
	"902": KindRevision,
}

// Command is one parsed command message.
type Command struct {
	// Code is the command as Conpot names it in its event type: the first six characters
	// after SOH ("I20100", "S60201"), or fewer when the command is shorter.
	Code string
	// Computer is true for the computer (packed) format, requested with a lower-case
	// letter ("i20100"); false for the display format ("I20100").
	Computer bool
	// Set is true for a set command ("S"/"s"), false for an inquiry ("I"/"i").
	Set bool
	// Function is the three-character function code ("201").
	Function string
	// Tank is the tank number, 0 for all tanks.
	Tank int
	// Data is what follows the tank number (a set command's product label).
	Data []byte
	// Kind is one of the Kind constants.
	Kind string
}

// Errors of ParseCommand.
var (
	ErrShort    = errors.New("command shorter than a function code and tank number")
	ErrType     = errors.New("command type is neither I, i, S nor s")
	ErrFunction = errors.New("unknown function code")
	ErrTank     = errors.New("tank number is not two decimal digits")
	ErrLabel    = errors.New("product label is empty, too long or not printable")
	ErrTrailing = errors.New("inquiry with trailing data")
)

// LabelLen is the length of a product label on the gauge.
const LabelLen = 20

// ParseCommand parses one command message: the bytes after SOH, without the line end. It
// is pure and never panics; any error is answered with ErrorReply. The returned Command has
// Code and Kind set even on error.
func ParseCommand(b []byte) (Command, error) {
	c := Command{Code: printable(b[:min(len(b), 6)]), Kind: KindUnknown}
	if len(b) < 6 {
		return c, ErrShort
	}
	switch b[0] {
	case 'I', 'S':
	case 'i', 's':
		c.Computer = true
	default:
		return c, ErrType
	}
	c.Set = b[0] == 'S' || b[0] == 's'
	c.Function = string(b[1:4])
	if b[4] < '0' || b[4] > '9' || b[5] < '0' || b[5] > '9' {
		return c, ErrTank
	}
	c.Tank = int(b[4]-'0')*10 + int(b[5]-'0')
	c.Data = b[6:]
	if c.Set {
		if c.Function != "602" {
			return c, ErrFunction
		}
		c.Kind = KindSetProduct
		if len(c.Data) == 0 || len(c.Data) > LabelLen || printable(c.Data) != string(c.Data) {
			return c, ErrLabel
		}
		return c, nil
	}
	kind, ok := functions[c.Function]
	if !ok {
		return c, ErrFunction
	}
	c.Kind = kind
	if len(c.Data) > 0 {
		return c, ErrTrailing
	}
	return c, nil
}

// complete reports whether cmd (the bytes after SOH so far) is a whole inquiry that needs
// no line end: a known function code and a tank number. Real gauges act on a command as
// soon as it is complete, so `printf '\x01I20100'` is answered at once.
func complete(cmd []byte) bool {
	if len(cmd) != 6 || (cmd[0] != 'I' && cmd[0] != 'i') {
		return false
	}
	_, ok := functions[string(cmd[1:4])]
	return ok && cmd[4] >= '0' && cmd[4] <= '9' && cmd[5] >= '0' && cmd[5] <= '9'
}

// Splitter cuts a byte stream into command messages. Bytes before an SOH are garbage
// (counted, not kept); a command ends at CR, LF, ETX or NUL, when it is a complete inquiry,
// or when Flush is called (the line went quiet or closed). It holds at most MaxCommand
// bytes.
type Splitter struct {
	buf     []byte
	in      bool // inside a command (an SOH was seen)
	skip    bool // an overlong command is being skipped
	Garbage int  // bytes seen outside commands
}

// Token is one result of the splitter: a command (the bytes after SOH) or, with TooLong, a
// command that exceeded MaxCommand.
type Token struct {
	Cmd     []byte
	TooLong bool
}

// Feed consumes b and appends the commands it completes to out. The Cmd slices are
// copies.
func (s *Splitter) Feed(b []byte, out []Token) []Token {
	for _, c := range b {
		switch {
		case c == SOH:
			// A new SOH starts over: what came before was an unfinished command.
			s.buf, s.in, s.skip = s.buf[:0], true, false
		case !s.in:
			if c != '\r' && c != '\n' && c != 0 {
				s.Garbage++
			}
		case c == '\r' || c == '\n' || c == ETX || c == 0:
			if s.skip {
				s.in, s.skip = false, false
				continue
			}
			out = append(out, Token{Cmd: append([]byte(nil), s.buf...)})
			s.buf, s.in = s.buf[:0], false
		case s.skip:
		case len(s.buf) == MaxCommand:
			out = append(out, Token{Cmd: append([]byte(nil), s.buf[:6]...), TooLong: true})
			s.buf, s.skip = s.buf[:0], true
		default:
			s.buf = append(s.buf, c)
			if complete(s.buf) {
				out = append(out, Token{Cmd: append([]byte(nil), s.buf...)})
				s.buf, s.in = s.buf[:0], false
			}
		}
	}
	return out
}

// Pending reports whether an unfinished command is buffered.
func (s *Splitter) Pending() bool { return s.in && !s.skip }

// Flush ends the buffered command, if any, as if a line end had come.
func (s *Splitter) Flush(out []Token) []Token {
	if s.Pending() {
		out = append(out, Token{Cmd: append([]byte(nil), s.buf...)})
	}
	s.buf, s.in, s.skip = s.buf[:0], false, false
	return out
}

// Checksum is the computer format's message checksum: the two's complement of the 16-bit
// sum of every byte before it (SOH through the "&&" tag), so that the sum of the message
// bytes and the checksum is zero.
func Checksum(b []byte) uint16 {
	var sum uint16
	for _, c := range b {
		sum += uint16(c & 0x7f)
	}
	return -sum
}

// FrameComputer wraps a computer-format data field: SOH, the function code, the data, the
// "&&" tag, the four hex digits of the checksum and ETX.
func FrameComputer(code string, data []byte) []byte {
	out := make([]byte, 0, len(code)+len(data)+8)
	out = append(out, SOH)
	out = append(out, code...)
	out = append(out, data...)
	out = append(out, '&', '&')
	out = fmt.Appendf(out, "%04X", Checksum(out))
	return append(out, ETX)
}

// VerifyComputer checks a computer-format message's framing and checksum and returns its
// function code and data field.
func VerifyComputer(msg []byte) (code string, data []byte, err error) {
	if len(msg) < 1+6+2+4+1 || msg[0] != SOH || msg[len(msg)-1] != ETX {
		return "", nil, errors.New("not an SOH … ETX message")
	}
	tag := len(msg) - 1 - 4 - 2
	if msg[tag] != '&' || msg[tag+1] != '&' {
		return "", nil, errors.New("no && data termination flag")
	}
	want, err := strconv.ParseUint(string(msg[tag+2:tag+6]), 16, 16)
	if err != nil {
		return "", nil, fmt.Errorf("checksum: %w", err)
	}
	if got := Checksum(msg[:tag+2]); uint16(want) != got {
		return "", nil, fmt.Errorf("checksum %04X, computed %04X", want, got)
	}
	return string(msg[1:7]), msg[7:tag], nil
}

// AppendFloat appends f in the serial interface's ASCII floating point format: the eight
// hex digits of the IEEE 754 single-precision value.
func AppendFloat(b []byte, f float64) []byte {
	return fmt.Appendf(b, "%08X", math.Float32bits(float32(f)))
}

// ParseFloat reads one eight-digit ASCII hex float.
func ParseFloat(s string) (float64, error) {
	u, err := strconv.ParseUint(s, 16, 32)
	if err != nil || len(s) != 8 {
		return 0, fmt.Errorf("ASCII hex float %q: bad digits", s)
	}
	return float64(math.Float32frombits(uint32(u))), nil
}

// printable returns b with every byte outside printable ASCII replaced by '?'.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// PyBytes renders b as Python's repr of a bytes value (b'\x01I20100\r\n'), which is what
// Conpot's JSON logger writes for raw requests.
func PyBytes(b []byte) string {
	quote := byte('\'')
	if bytes.IndexByte(b, '\'') >= 0 && bytes.IndexByte(b, '"') < 0 {
		quote = '"'
	}
	out := make([]byte, 0, len(b)+3)
	out = append(out, 'b', quote)
	for _, c := range b {
		switch {
		case c == '\\' || c == quote:
			out = append(out, '\\', c)
		case c == '\t':
			out = append(out, '\\', 't')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c < 0x20 || c > 0x7e:
			out = fmt.Appendf(out, "\\x%02x", c)
		default:
			out = append(out, c)
		}
	}
	return string(append(out, quote))
}
