package proxy

import (
	"unicode/utf8"

	"github.com/icsnare/icsnare/protocols"
)

// AsciiDecoderName is the class path Conpot templates name for the text decoder.
const AsciiDecoderName = "conpot.protocols.proxy.ascii_decoder.AsciiDecoder"

// decoderAliases maps class paths older Conpot templates name to the ones decoders are
// registered under (Conpot moved the Kamstrup decoder when it split the package).
var decoderAliases = map[string]string{
	"conpot.protocols.kamstrup.meter_protocol.decoder_382.Decoder382": "conpot.protocols.kamstrup_meter.decoder_382.Decoder382",
}

func init() {
	protocols.RegisterDecoder(AsciiDecoderName, func() protocols.StreamDecoder { return &asciiDecoder{} })
}

// lookupDecoder finds the decoder a <decoder> element names, following aliases.
func lookupDecoder(name string) (func() protocols.StreamDecoder, bool) {
	if f, ok := protocols.LookupDecoder(name); ok {
		return f, true
	}
	if alias, ok := decoderAliases[name]; ok {
		return protocols.LookupDecoder(alias)
	}
	return nil, false
}

// asciiDecoder is Conpot's AsciiDecoder: the bytes read as UTF-8, every invalid sequence
// replaced by U+FFFD as Python's "replace" error handler does. Unlike Conpot's, which
// decodes each chunk on its own, it carries a character split across two reads over.
type asciiDecoder struct{ in, out UTF8Stream }

// DecodeIn implements protocols.StreamDecoder.
func (d *asciiDecoder) DecodeIn(b []byte) string { return d.in.Decode(b) }

// DecodeOut implements protocols.StreamDecoder.
func (d *asciiDecoder) DecodeOut(b []byte) string { return d.out.Decode(b) }

// UTF8Stream decodes a byte stream as UTF-8 in chunks. A sequence cut off at the end of a
// chunk is kept (at most 3 bytes) and completed by the next one.
type UTF8Stream struct {
	pending [utf8.UTFMax - 1]byte
	n       int
}

// Decode returns the text of b, after any bytes kept from the previous chunk.
func (s *UTF8Stream) Decode(b []byte) string {
	if s.n > 0 {
		joined := make([]byte, 0, s.n+len(b))
		joined = append(append(joined, s.pending[:s.n]...), b...)
		b, s.n = joined, 0
	}
	out, rest := ReplaceInvalidUTF8(nil, b, false)
	s.n = copy(s.pending[:], rest)
	return string(out)
}

// Flush returns the text of the bytes kept back (a cut-off sequence becomes U+FFFD).
func (s *UTF8Stream) Flush() string {
	out, _ := ReplaceInvalidUTF8(nil, s.pending[:s.n], true)
	s.n = 0
	return string(out)
}

// ReplaceInvalidUTF8 appends b to dst as valid UTF-8, replacing each maximal subpart of an
// ill-formed sequence with U+FFFD (Unicode §3.9, what Python's decode(errors="replace")
// does: b"\x80abc" → "\ufffdabc", b"\xe2\x82" → one U+FFFD). When final is false, a valid
// but incomplete sequence at the end of b is not decoded but returned as rest.
func ReplaceInvalidUTF8(dst, b []byte, final bool) (out, rest []byte) {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		need, lo, hi := seqShape(c)
		if need == 0 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i++
			continue
		}
		j := i + 1
		for k := 0; k < need; k++ {
			if j >= len(b) {
				if !final {
					return dst, b[i:]
				}
				break
			}
			lower, upper := byte(0x80), byte(0xBF)
			if k == 0 {
				lower, upper = lo, hi
			}
			if b[j] < lower || b[j] > upper {
				break
			}
			j++
		}
		if j-i == need+1 {
			dst = append(dst, b[i:j]...)
		} else {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		}
		i = j
	}
	return dst, nil
}

// seqShape returns how many continuation bytes lead byte c takes and the range allowed for
// the first of them; need is 0 for a byte that cannot start a sequence.
func seqShape(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 1, 0x80, 0xBF
	case c == 0xE0:
		return 2, 0xA0, 0xBF
	case c == 0xED:
		return 2, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		return 2, 0x80, 0xBF
	case c == 0xF0:
		return 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 3, 0x80, 0xBF
	case c == 0xF4:
		return 3, 0x80, 0x8F
	}
	return 0, 0, 0
}
