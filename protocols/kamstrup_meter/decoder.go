package kamstrupmeter

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"strings"

	"github.com/icsnare/icsnare/protocols"
)

// DecoderClass is the Conpot class path proxy templates name for this decoder.
const DecoderClass = "conpot.protocols.kamstrup_meter.decoder_382.Decoder382"

func init() {
	protocols.RegisterDecoder(DecoderClass, func() protocols.StreamDecoder { return NewDecoder() })
}

// registerNames are the names Conpot's Decoder382 gives the 382's best-known registers.
var registerNames = map[uint16]string{
	0x0001: "Energy in",
	0x0002: "Energy out",
	0x000D: "Energy in hi-res",
	0x000E: "Energy out hi-res",
	0x0033: "Meter number",
	0x03E9: "Meter serialnumber",
	0x0466: "Meter type",
	0x0417: "Time zone",
	0x04F7: "KMP address",
	0x04F4: "M-bus address",
	0x041E: "Voltage p1",
	0x041F: "Voltage p2",
	0x0420: "Voltage p3",
	0x0434: "Current p1",
	0x0435: "Current p2",
	0x0436: "Current p3",
	0x0438: "Power p1",
	0x0439: "Power p2",
	0x043A: "Power p3",
	0x178A: "Firmware revision A",
	0x178F: "Firmware revision B",
}

// maxDecoded bounds the text one Decode call returns.
const maxDecoded = 4096

// Decoder turns a proxied meter connection's frames into Conpot's Decoder382 texts
// ("Request for 1 register(s): 1054 (Voltage p1) [0x3f]"). It keeps a partial frame of
// each direction between calls (at most MaxFrame bytes each) and reports every frame a
// chunk completes, one per line (Conpot reported only the first).
type Decoder struct {
	in, out Scanner
}

// NewDecoder returns a decoder for one connection.
func NewDecoder() *Decoder {
	return &Decoder{in: Scanner{Start: RequestMagic}, out: Scanner{Start: ResponseMagic}}
}

// DecodeIn implements protocols.StreamDecoder for bytes towards the meter.
func (d *Decoder) DecodeIn(b []byte) string { return decodeAll(d.in.Feed(b), DecodeRequest) }

// DecodeOut implements protocols.StreamDecoder for bytes from the meter.
func (d *Decoder) DecodeOut(b []byte) string { return decodeAll(d.out.Feed(b), DecodeResponse) }

func decodeAll(frames []Frame, dec func(Frame) string) string {
	var sb strings.Builder
	for _, f := range frames {
		if sb.Len() >= maxDecoded {
			sb.WriteString("\n…")
			break
		}
		if sb.Len() > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(dec(f))
	}
	return sb.String()
}

func registerName(id uint16) (string, bool) {
	n, ok := registerNames[id]
	return n, ok
}

// DecodeRequest describes one request frame as Conpot's Decoder382 does.
func DecodeRequest(f Frame) string {
	if f.Err != nil {
		return "Request discarded: frame longer than " + fmt.Sprint(MaxFrame) + " bytes."
	}
	m, err := ParseFrame(f.Raw)
	if err != nil {
		return "Request discarded due to invalid CRC."
	}
	addr := fmt.Sprintf(" [%#x]", m.Addr)
	switch m.Cmd {
	case CmdGetRegister:
		if len(m.Data) < 1 {
			return "Invalid message, register count was too high"
		}
		n := int(m.Data[0])
		if len(m.Data) < 1+2*n {
			return "Invalid message, register count was too high"
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "Request for %d register(s): ", n)
		for i := range n {
			id := binary.BigEndian.Uint16(m.Data[1+2*i:])
			if name, ok := registerName(id); ok {
				fmt.Fprintf(&sb, "%d (%s)", id, name)
			} else {
				fmt.Fprintf(&sb, "Unknown (%d)", id)
			}
			if i+1 < n {
				sb.WriteString(", ")
			}
		}
		return sb.String() + addr
	case CmdGetType:
		return "Request for GetType" + addr
	case CmdLogin:
		if len(m.Data) < 2 {
			return "Login command without a pin code" + addr
		}
		return fmt.Sprintf("Login command with pin_code: %d", binary.BigEndian.Uint16(m.Data)) + addr
	}
	return fmt.Sprintf("Unknown request command: %d", m.Cmd)
}

// DecodeResponse describes one response frame as Conpot's Decoder382 does (its spelling
// "reponse" kept, so pipelines matching Conpot's text keep working).
func DecodeResponse(f Frame) string {
	if f.Err != nil {
		return "Response discarded: frame longer than " + fmt.Sprint(MaxFrame) + " bytes."
	}
	m, err := ParseFrame(f.Raw)
	if err != nil {
		return "Response discarded due to invalid CRC."
	}
	if m.Cmd != CmdGetRegister {
		return fmt.Sprintf("Unknown response command: %d", m.Cmd)
	}
	var sb strings.Builder
	sb.WriteString("Register reponse: ")
	regs, perr := ParseRegisters(m.Data)
	if len(regs) == 0 {
		sb.WriteString("Invalid register")
	}
	for _, r := range regs {
		v := new(big.Int).SetBytes(r.Value)
		if name, ok := registerName(r.ID); ok {
			fmt.Fprintf(&sb, "%d(%s):%s, ", r.ID, name, v)
		} else {
			fmt.Fprintf(&sb, "%d:%s, ", r.ID, v)
		}
	}
	if perr != nil && len(regs) > 0 {
		sb.WriteString("Invalid register")
	}
	return sb.String() + fmt.Sprintf(" [%#x]", m.Addr)
}
