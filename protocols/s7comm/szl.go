package s7comm

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// SZL ids answered here. The high byte selects the partial list extract: 0x00 all
// records, 0x01 the record named by the index, 0x0F only the header (record count).
const (
	SZLList          = 0x0000
	SZLModuleIdent   = 0x0011
	SZLModuleRec     = 0x0111
	SZLModuleHead    = 0x0F11
	SZLComponent     = 0x001C
	SZLComponentRec  = 0x011C
	SZLComponentHead = 0x0F1C
	SZLCommCaps      = 0x0131
	SZLProtection    = 0x0132
	SZLProtection2   = 0x0232
	SZLModeInfo      = 0x0424
	SZLListHead      = 0x0F00
)

// SZL error codes in the userdata parameter (with return code 0x0A in the data).
const (
	ErrSZLUnknown = 0xD401 // information function unavailable: SZL id or index not supported
	ErrNotImpl    = 0x8104 // service not implemented on the module
	ErrBlockNF    = 0xD209 // block not found
	ErrNoBlock    = 0xD20E // no (further) block available
	ErrPassword   = 0xD602 // incorrect password
	ErrNoPassword = 0xD605 // legitimisation impossible: no password set
	ErrProtection = 0xD241 // not permitted in the current protection level
	ErrAlready    = 0xD0AD // operating mode already set
)

// supportedSZL is the list SZL 0x0000 reports.
var supportedSZL = []uint16{SZLList, SZLModuleIdent, SZLModuleRec, SZLModuleHead, SZLComponent, SZLComponentRec,
	SZLComponentHead, SZLCommCaps, SZLProtection, SZLProtection2, SZLModeInfo, SZLListHead}

// identity is what the SZL answers need from one host.
type identity struct {
	db      *profiles.Databus // the host's; nil: every text is empty
	mode    byte
	prev    byte
	changed time.Time
}

// text returns the host's string at a databus key ("" for none or an error).
func (id *identity) text(key string) string {
	if key == "" || id.db == nil {
		return ""
	}
	s, err := id.db.GetString(key)
	if err != nil {
		return ""
	}
	return s
}

// szlHeader starts an SZL answer: id, index, record length, record count.
func szlHeader(id, idx uint16, recLen, count int) []byte {
	out := make([]byte, 8, 8+recLen*count)
	binary.BigEndian.PutUint16(out, id)
	binary.BigEndian.PutUint16(out[2:], idx)
	binary.BigEndian.PutUint16(out[4:], uint16(recLen))
	binary.BigEndian.PutUint16(out[6:], uint16(count))
	return out
}

// padSpace pads s with spaces to n bytes (MLFB fields), truncating if longer.
func padSpace(dst []byte, s string, n int) []byte {
	for i := 0; i < n; i++ {
		if i < len(s) {
			dst = append(dst, s[i])
		} else {
			dst = append(dst, ' ')
		}
	}
	return dst
}

// parseVersion reads "V2.2.1", "2.6" or "3" into up to three numbers.
func parseVersion(s string) [3]byte {
	var v [3]byte
	s = strings.TrimLeft(strings.TrimSpace(s), "vV")
	for i := range v {
		part, rest, more := strings.Cut(s, ".")
		if i == len(v)-1 {
			part, more = s, false // the third number is the rest ("1.2.3.4": not a number)
		}
		if n, ok := versionNumber(strings.TrimSpace(part)); ok {
			v[i] = n
		}
		if !more {
			break
		}
		s = rest
	}
	return v
}

// versionNumber reads a decimal number below 256 (no sign).
func versionNumber(s string) (byte, bool) {
	if s == "" || len(s) > 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}

// record11 builds one 28-byte SZL 0x0011 record.
func (c *config) record11(dst []byte, r identRec, id *identity) []byte {
	out := binary.BigEndian.AppendUint16(dst, r.Index)
	mlfb := ""
	for _, x := range c.Ident11 {
		if x.Index == 1 {
			mlfb = id.text(x.Key)
		}
	}
	val := id.text(r.Key)
	var ausbg, ausbe uint16
	switch r.Index {
	case 0x0001: // module: MLFB, hardware release
		mlfb = val
		ausbe = uint16(parseVersion(id.text(keyFor(c.Ident11, 6)))[0])
	case 0x0006: // basic hardware: MLFB, hardware release
		ausbe = uint16(parseVersion(val)[0])
	case 0x0007: // basic firmware: no MLFB, 'V' major.minor.patch
		v := parseVersion(val)
		mlfb = ""
		ausbg = 'V'<<8 | uint16(v[0])
		ausbe = uint16(v[1])<<8 | uint16(v[2])
	default: // other records (firmware extensions, boot loader): version in the key
		v := parseVersion(val)
		mlfb = ""
		ausbg = 'V'<<8 | uint16(v[0])
		ausbe = uint16(v[1])<<8 | uint16(v[2])
	}
	out = padSpace(out, mlfb, 20)
	out = binary.BigEndian.AppendUint16(out, c.ModuleType)
	out = binary.BigEndian.AppendUint16(out, ausbg)
	return binary.BigEndian.AppendUint16(out, ausbe)
}

func keyFor(recs []identRec, idx uint16) string {
	for _, r := range recs {
		if r.Index == idx {
			return r.Key
		}
	}
	return ""
}

// record1C builds one 34-byte SZL 0x001C record: index and NUL-padded text. Record 0x0009
// (manufacturer and profile) is fixed; 0x000A (OEM) keeps its numeric tail zeroed.
func record1C(dst []byte, r identRec, id *identity) []byte {
	out := binary.BigEndian.AppendUint16(dst, r.Index)
	switch r.Index {
	case 0x0009: // Siemens manufacturer id 0x002A, profile id 0xF600
		out = append(out, 0x00, 0x2A, 0xF6, 0x00)
		return append(out, make([]byte, 28)...)
	case 0x000A: // OEM copyright id (20), OEM id (2), OEM additional id (4), reserved
		out = padText(out, id.text(r.Key), 20)
		return append(out, make([]byte, 12)...)
	case 0x0001, 0x0002, 0x0005, 0x0008: // 24 text + 8 reserved
		out = padText(out, id.text(r.Key), 24)
		return append(out, make([]byte, 8)...)
	case 0x0004: // copyright: 26 text + 6 reserved
		out = padText(out, id.text(r.Key), 26)
		return append(out, make([]byte, 6)...)
	}
	return padText(out, id.text(r.Key), 32)
}

// szl answers one SZL read: the answer payload (SZL header and records) or an error code.
func (c *config) szl(req SZLRequest, id *identity) ([]byte, uint16) {
	switch req.ID {
	case SZLList, SZLListHead:
		if req.ID == SZLListHead {
			return szlHeader(req.ID, req.Index, 2, len(supportedSZL)), 0
		}
		out := szlHeader(req.ID, req.Index, 2, len(supportedSZL))
		for _, x := range supportedSZL {
			out = binary.BigEndian.AppendUint16(out, x)
		}
		return out, 0
	case SZLModuleIdent, SZLModuleRec, SZLModuleHead:
		return c.identList(req, c.Ident11, 28, func(dst []byte, r identRec) []byte { return c.record11(dst, r, id) })
	case SZLComponent, SZLComponentRec, SZLComponentHead:
		return c.identList(req, c.comp1C, 34, func(dst []byte, r identRec) []byte { return record1C(dst, r, id) })
	case SZLCommCaps:
		if req.Index != 0x0001 {
			return nil, ErrSZLUnknown
		}
		out := szlHeader(req.ID, req.Index, 40, 1)
		out = binary.BigEndian.AppendUint16(out, 0x0001)
		out = binary.BigEndian.AppendUint16(out, c.PDUSize)
		out = binary.BigEndian.AppendUint16(out, c.MaxConnections)
		out = binary.BigEndian.AppendUint32(out, c.MPIRate)
		out = binary.BigEndian.AppendUint32(out, c.BusRate)
		return append(out, make([]byte, 26)...), 0
	case SZLProtection, SZLProtection2:
		if req.Index != 0x0004 {
			return nil, ErrSZLUnknown
		}
		out := szlHeader(req.ID, req.Index, 40, 1)
		param := 0
		if c.Password != "" {
			param = c.Protection
		}
		schal := 1
		if c.Switch == SwitchRun {
			schal = 2
		}
		for _, w := range []int{0x0004, schal, param, c.Protection, c.Switch, 0} {
			out = binary.BigEndian.AppendUint16(out, uint16(w))
		}
		return append(out, make([]byte, 28)...), 0
	case SZLModeInfo:
		if req.Index != 0x0000 {
			return nil, ErrSZLUnknown
		}
		out := szlHeader(req.ID, req.Index, 20, 1)
		ev := uint16(0x4302) // mode transition STARTUP -> RUN
		if id.mode == ModeStop {
			ev = 0x4304 // STOP by PG operation
			if id.prev == 0 {
				ev = 0x4303 // STOP by the mode selector
			}
		}
		out = binary.BigEndian.AppendUint16(out, ev)
		out = append(out, 0xFF, id.mode) // snap7 and Sharp7 read this byte as 0x08 RUN / 0x04 STOP
		out = append(out, 0, 0, 0, 0)
		out = append(out, 0x00, 0x02, 0x07, 0x00) // anlinfo: last startup a warm restart
		return appendBCDTime(out, id.changed), 0
	}
	return nil, ErrSZLUnknown
}

// component returns the 0x001C records in index order with the fixed 0x0009 record added.
func (c *config) component() []identRec {
	out := make([]identRec, 0, len(c.Ident1C)+1)
	added := false
	for _, r := range c.Ident1C {
		if r.Index > 9 && !added {
			out = append(out, identRec{Index: 9})
			added = true
		}
		if r.Index == 9 {
			added = true
		}
		out = append(out, r)
	}
	if !added && len(out) > 0 {
		out = append(out, identRec{Index: 9})
	}
	return out
}

func (c *config) identList(req SZLRequest, recs []identRec, recLen int, build func([]byte, identRec) []byte) ([]byte, uint16) {
	switch req.ID & 0xFF00 {
	case 0x0F00:
		return szlHeader(req.ID, req.Index, recLen, len(recs)), 0
	case 0x0100:
		for _, r := range recs {
			if r.Index == req.Index {
				return build(szlHeader(req.ID, req.Index, recLen, 1), r), 0
			}
		}
		return nil, ErrSZLUnknown
	}
	out := szlHeader(req.ID, req.Index, recLen, len(recs))
	for _, r := range recs {
		out = build(out, r)
	}
	return out, 0
}

func bcd(v int) byte { return byte((v/10)%10<<4 | v%10) }

// appendBCDTime appends the 8-byte BCD DATE_AND_TIME.
func appendBCDTime(dst []byte, t time.Time) []byte {
	ms := t.Nanosecond() / 1e6
	dst = append(dst, bcd(t.Year()%100), bcd(int(t.Month())), bcd(t.Day()), bcd(t.Hour()), bcd(t.Minute()), bcd(t.Second()),
		bcd(ms/10))
	return append(dst, byte((ms%10)<<4)|byte(t.Weekday()+1))
}

// appendClock appends the 10-byte clock answer of the "read clock" time function.
func appendClock(dst []byte, t time.Time) []byte {
	dst = append(dst, 0x00, bcd(t.Year()/100))
	return appendBCDTime(dst, t)
}
