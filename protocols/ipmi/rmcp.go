package ipmi

import (
	"encoding/binary"
	"errors"
)

// RMCP (ASF 2.0 §3.2.2) header fields.
const (
	rmcpVersion   = 0x06
	rmcpNoAck     = 0xFF // sequence number of messages that want no RMCP ACK
	rmcpClassASF  = 0x06
	rmcpClassIPMI = 0x07
	rmcpClassMask = 0x1F
	rmcpAckBit    = 0x80
	rmcpHeaderLen = 4
)

// ASF message fields.
const (
	asfIANA        = 4542 // ASF's IANA enterprise number
	asfPresPing    = 0x80
	asfPresPong    = 0x40
	asfPingLen     = 8  // IANA(4) type tag reserved datalen
	asfPongDataLen = 16 // pong data: IANA(4) OEM(4) entities interactions reserved(6)
)

// Session header auth types.
const (
	authNone     = 0x00
	authMD2      = 0x01
	authMD5      = 0x02
	authPassword = 0x04
	authOEM      = 0x05
	authRMCPPlus = 0x06
)

// RMCP+ payload types (IPMI v2.0 table 13-16).
const (
	payloadIPMI        = 0x00
	payloadSOL         = 0x01
	payloadOEM         = 0x02
	payloadOpenReq     = 0x10
	payloadOpenResp    = 0x11
	payloadRAKP1       = 0x12
	payloadRAKP2       = 0x13
	payloadRAKP3       = 0x14
	payloadRAKP4       = 0x15
	payloadEncrypted   = 0x80
	payloadAuthentic   = 0x40
	payloadTypeMask    = 0x3F
	v2HeaderLen        = 12 // auth type, payload type, session id, sequence, length
	v15HeaderLen       = 10 // auth type, sequence, session id, (auth code), length
	v15AuthCodeLen     = 16
	nextHeaderRMCPIPMI = 0x07
)

// IPMB addresses of a LAN message.
const (
	bmcSlaveAddr = 0x20
	remoteSWID   = 0x81
	minLANMsgLen = 7 // rsAddr netfn chk rqAddr rqSeq cmd chk
)

var (
	errShort   = errors.New("truncated")
	errVersion = errors.New("not RMCP version 1.0")
	errFormat  = errors.New("malformed")
	errCheck   = errors.New("bad checksum")
)

// rmcpHeader is the 4-byte RMCP header.
type rmcpHeader struct {
	seq   byte
	class byte // including the ACK bit
}

func parseRMCP(b []byte) (rmcpHeader, []byte, error) {
	if len(b) < rmcpHeaderLen {
		return rmcpHeader{}, nil, errShort
	}
	if b[0] != rmcpVersion {
		return rmcpHeader{}, nil, errVersion
	}
	return rmcpHeader{seq: b[2], class: b[3]}, b[rmcpHeaderLen:], nil
}

func appendRMCP(b []byte, seq, class byte) []byte {
	return append(b, rmcpVersion, 0, seq, class)
}

// asfMsg is an ASF message (presence ping, and anything else of class ASF).
type asfMsg struct {
	iana uint32
	typ  byte
	tag  byte
	data []byte
}

func parseASF(b []byte) (asfMsg, error) {
	if len(b) < asfPingLen {
		return asfMsg{}, errShort
	}
	m := asfMsg{iana: binary.BigEndian.Uint32(b), typ: b[4], tag: b[5]}
	n := int(b[7])
	if len(b) < asfPingLen+n {
		return asfMsg{}, errShort
	}
	m.data = b[asfPingLen : asfPingLen+n]
	return m, nil
}

// appendPong appends an ASF presence pong answering the ping with the given tag: IPMI
// supported, ASF version 1.0, no OEM extensions.
func appendPong(b []byte, seq, tag byte) []byte {
	b = appendRMCP(b, seq, rmcpClassASF)
	b = binary.BigEndian.AppendUint32(b, asfIANA)
	b = append(b, asfPresPong, tag, 0, asfPongDataLen)
	b = binary.BigEndian.AppendUint32(b, asfIANA)
	b = append(b, 0, 0, 0, 0) // OEM defined
	b = append(b, 0x81)       // supported entities: IPMI, ASF 1.0
	b = append(b, 0x00)       // supported interactions
	return append(b, 0, 0, 0, 0, 0, 0)
}

// v15Session is an IPMI v1.5 session header (IPMI v2.0 §13.6).
type v15Session struct {
	authType byte
	seq      uint32
	id       uint32
	authCode []byte
}

// parseV15 splits an IPMI v1.5 session packet into its header and message.
func parseV15(b []byte) (v15Session, []byte, error) {
	if len(b) < v15HeaderLen {
		return v15Session{}, nil, errShort
	}
	h := v15Session{authType: b[0] & 0x0F, seq: binary.LittleEndian.Uint32(b[1:]), id: binary.LittleEndian.Uint32(b[5:])}
	off := 9
	if h.authType != authNone {
		if len(b) < off+v15AuthCodeLen+1 {
			return v15Session{}, nil, errShort
		}
		h.authCode = b[off : off+v15AuthCodeLen]
		off += v15AuthCodeLen
	}
	n := int(b[off])
	off++
	if len(b) < off+n {
		return v15Session{}, nil, errShort
	}
	return h, b[off : off+n], nil
}

// appendV15NoAuth appends a session-less IPMI v1.5 packet carrying msg.
func appendV15NoAuth(b, msg []byte) []byte {
	b = appendRMCP(b, rmcpNoAck, rmcpClassIPMI)
	b = append(b, authNone, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(msg)))
	b = append(b, msg...)
	return b
}

// v2Session is an IPMI v2.0 RMCP+ session header with the trailer fields it implies.
type v2Session struct {
	payloadType byte // with the encrypted and authenticated bits
	id          uint32
	seq         uint32
	payload     []byte
	// signed is the part the integrity code covers (auth type … next header) and authCode
	// the code itself; both are set only for authenticated packets.
	signed   []byte
	authCode []byte
}

func (h *v2Session) typ() byte         { return h.payloadType & payloadTypeMask }
func (h *v2Session) encrypted() bool   { return h.payloadType&payloadEncrypted != 0 }
func (h *v2Session) authentic() bool   { return h.payloadType&payloadAuthentic != 0 }
func (h *v2Session) sessionless() bool { return h.id == 0 }

// parseV2 parses an RMCP+ packet (b starts at the auth type byte). authLen is the
// integrity code length of the session the packet claims; it is asked for only when the
// packet is authenticated and after the session id is known.
func parseV2(b []byte, authLen func(id uint32) (int, bool)) (v2Session, error) {
	if len(b) < v2HeaderLen {
		return v2Session{}, errShort
	}
	if b[0]&0x0F != authRMCPPlus {
		return v2Session{}, errFormat
	}
	h := v2Session{payloadType: b[1]}
	off := 2
	if h.typ() == payloadOEM {
		return v2Session{}, errFormat // OEM explicit payloads are not supported
	}
	h.id = binary.LittleEndian.Uint32(b[off:])
	h.seq = binary.LittleEndian.Uint32(b[off+4:])
	n := int(binary.LittleEndian.Uint16(b[off+8:]))
	off += 10
	if len(b) < off+n {
		return v2Session{}, errShort
	}
	h.payload = b[off : off+n]
	off += n
	if !h.authentic() {
		return h, nil
	}
	alen, ok := authLen(h.id)
	if !ok {
		return v2Session{}, errFormat
	}
	// Trailer: pad (0–3 bytes of 0xFF), pad length, next header, auth code.
	rest := len(b) - off
	if rest < 2+alen {
		return v2Session{}, errShort
	}
	end := len(b) - alen
	padLen := int(b[end-2])
	if b[end-1] != nextHeaderRMCPIPMI || padLen > 3 || off+padLen+2 != end {
		return v2Session{}, errFormat
	}
	h.signed = b[:end]
	h.authCode = b[end:]
	return h, nil
}

// appendV2 appends an RMCP+ packet with the given payload. When sign is set the trailer
// is added and sign computes the integrity code over the signed part.
func appendV2(b []byte, payloadType byte, id, seq uint32, payload []byte, sign func(dst, signed []byte) []byte) []byte {
	b = appendRMCP(b, rmcpNoAck, rmcpClassIPMI)
	start := len(b)
	b = append(b, authRMCPPlus, payloadType)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	if sign == nil {
		return b
	}
	pad := (4 - (len(b)-start+2)%4) % 4
	for range pad {
		b = append(b, 0xFF)
	}
	b = append(b, byte(pad), nextHeaderRMCPIPMI)
	return sign(b, b[start:])
}

// lanRequest is an IPMI LAN request message (IPMI v2.0 §13.8).
type lanRequest struct {
	rsAddr, netFn, rsLUN byte
	rqAddr, rqSeq, rqLUN byte
	cmd                  byte
	data                 []byte
}

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

func parseLANRequest(b []byte) (lanRequest, error) {
	if len(b) < minLANMsgLen {
		return lanRequest{}, errShort
	}
	if checksum(b[:2]) != b[2] || checksum(b[3:len(b)-1]) != b[len(b)-1] {
		return lanRequest{}, errCheck
	}
	return lanRequest{
		rsAddr: b[0], netFn: b[1] >> 2, rsLUN: b[1] & 3,
		rqAddr: b[3], rqSeq: b[4] >> 2, rqLUN: b[4] & 3,
		cmd: b[5], data: b[6 : len(b)-1],
	}, nil
}

// appendLANResponse appends the response message to r with completion code cc and data.
func appendLANResponse(b []byte, r *lanRequest, cc byte, data []byte) []byte {
	start := len(b)
	b = append(b, r.rqAddr, (r.netFn|1)<<2|r.rqLUN)
	b = append(b, checksum(b[start:start+2]))
	mid := len(b)
	b = append(b, r.rsAddr, r.rqSeq<<2|r.rsLUN, r.cmd, cc)
	b = append(b, data...)
	return append(b, checksum(b[mid:]))
}
