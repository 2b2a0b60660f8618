package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// IPMI v2.0 / RMCP+ (IPMI v2.0 rev 1.1, sections 13.6–13.33) with cipher suite 3:
// RAKP-HMAC-SHA1, HMAC-SHA1-96 integrity, AES-CBC-128 confidentiality.
const (
	rmcpIPMIClass    = 0x07
	authRMCPPlus     = 0x06
	payloadIPMI      = 0x00
	payloadOpenReq   = 0x10
	payloadOpenResp  = 0x11
	payloadRAKP1     = 0x12
	payloadRAKP2     = 0x13
	payloadRAKP3     = 0x14
	payloadRAKP4     = 0x15
	payloadEncrypted = 0x80
	payloadAuthed    = 0x40
	privAdmin        = 0x04
	nameOnlyLookup   = 0x10 // RAKP 1 role bit: look the user up by name alone (ipmitool's default)
	sha1Len          = 20
	sha1_96Len       = 12
)

// rmcpPlusPacket wraps a payload in RMCP and an IPMI v2.0 session header. With a session
// (k1 non-nil) the payload is encrypted with k2 (AES-CBC-128, random IV) and the packet
// carries the HMAC-SHA1-96 integrity trailer keyed with k1.
func rmcpPlusPacket(ptype byte, sid, seq uint32, payload []byte, k1, k2 []byte) ([]byte, error) {
	b := []byte{0x06, 0x00, 0xff, rmcpIPMIClass, authRMCPPlus, ptype}
	if k2 != nil {
		enc, err := aesEncrypt(k2, payload)
		if err != nil {
			return nil, err
		}
		payload = enc
		b[5] |= payloadEncrypted
	}
	if k1 != nil {
		b[5] |= payloadAuthed
	}
	b = binary.LittleEndian.AppendUint32(b, sid)
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	if k1 != nil {
		// Integrity pad so that auth type … next header is a multiple of 4 octets.
		n := len(b) - 4 + 2
		pad := (4 - n%4) % 4
		for i := 0; i < pad; i++ {
			b = append(b, 0xff)
		}
		b = append(b, byte(pad), 0x07)
		m := hmac.New(sha1.New, k1)
		m.Write(b[4:])
		b = append(b, m.Sum(nil)[:sha1_96Len]...)
	}
	return b, nil
}

// rmcpPlusReply is a parsed RMCP+ packet.
type rmcpPlusReply struct {
	ptype   byte
	sid     uint32
	seq     uint32
	payload []byte
}

// parseRMCPPlus checks the RMCP and session headers and, for a session packet, the
// integrity trailer (k1) and decrypts the payload (k2).
func parseRMCPPlus(b []byte, k1, k2 []byte) (rmcpPlusReply, error) {
	var r rmcpPlusReply
	if len(b) < 16 || b[0] != 0x06 || b[3] != rmcpIPMIClass || b[4] != authRMCPPlus {
		return r, fmt.Errorf("ipmi: not an RMCP+ packet: % x", b)
	}
	r.ptype = b[5]
	r.sid = binary.LittleEndian.Uint32(b[6:])
	r.seq = binary.LittleEndian.Uint32(b[10:])
	n := int(binary.LittleEndian.Uint16(b[14:]))
	if 16+n > len(b) {
		return r, errors.New("ipmi: payload length beyond the packet")
	}
	r.payload = b[16 : 16+n]
	if (k1 != nil) != (r.ptype&payloadAuthed != 0) || (k2 != nil) != (r.ptype&payloadEncrypted != 0) {
		return r, fmt.Errorf("ipmi: payload type 0x%02x, not what the session negotiated", r.ptype)
	}
	if k1 != nil {
		if len(b) < 16+n+2+sha1_96Len {
			return r, errors.New("ipmi: no integrity trailer")
		}
		end := len(b) - sha1_96Len
		if (end-4)%4 != 0 || b[end-1] != 0x07 || int(b[end-2]) != end-2-16-n {
			return r, errors.New("ipmi: malformed integrity pad")
		}
		m := hmac.New(sha1.New, k1)
		m.Write(b[4:end])
		if !hmac.Equal(m.Sum(nil)[:sha1_96Len], b[end:]) {
			return r, errors.New("ipmi: integrity check failed")
		}
	}
	if k2 != nil {
		p, err := aesDecrypt(k2, r.payload)
		if err != nil {
			return r, err
		}
		r.payload = p
	}
	r.ptype &^= payloadEncrypted | payloadAuthed
	return r, nil
}

// aesEncrypt is AES-CBC-128 as IPMI pads it: data, pad octets 1, 2, …, the pad length,
// under a random IV that leads the result.
func aesEncrypt(k2, data []byte) ([]byte, error) {
	blk, err := aes.NewCipher(k2[:16])
	if err != nil {
		return nil, err
	}
	pad := (16 - (len(data)+1)%16) % 16
	out := make([]byte, 16, 16+len(data)+pad+1)
	if _, err := rand.Read(out[:16]); err != nil {
		return nil, err
	}
	out = append(out, data...)
	for i := 1; i <= pad; i++ {
		out = append(out, byte(i))
	}
	out = append(out, byte(pad))
	cipher.NewCBCEncrypter(blk, out[:16]).CryptBlocks(out[16:], out[16:])
	return out, nil
}

func aesDecrypt(k2, data []byte) ([]byte, error) {
	if len(data) < 32 || len(data)%16 != 0 {
		return nil, fmt.Errorf("ipmi: encrypted payload of %d octets", len(data))
	}
	blk, err := aes.NewCipher(k2[:16])
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(data)-16)
	cipher.NewCBCDecrypter(blk, data[:16]).CryptBlocks(out, data[16:])
	pad := int(out[len(out)-1])
	if pad >= 16 || pad+1 > len(out) {
		return nil, errors.New("ipmi: bad confidentiality pad")
	}
	for i := 0; i < pad; i++ {
		if out[len(out)-1-pad+i] != byte(i+1) {
			return nil, errors.New("ipmi: bad confidentiality pad")
		}
	}
	return out[:len(out)-1-pad], nil
}

// openSessionRequest proposes suite 3 for console session id csid.
func openSessionRequest(tag byte, csid uint32) []byte {
	b := []byte{tag, privAdmin, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, csid)
	b = append(b, 0, 0, 0, 8, 1, 0, 0, 0) // authentication: RAKP-HMAC-SHA1
	b = append(b, 1, 0, 0, 8, 1, 0, 0, 0) // integrity: HMAC-SHA1-96
	b = append(b, 2, 0, 0, 8, 1, 0, 0, 0) // confidentiality: AES-CBC-128
	return b
}

// parseOpenSessionResponse returns the managed system's session id.
func parseOpenSessionResponse(p []byte, tag byte, csid uint32) (uint32, error) {
	if len(p) < 8 || p[0] != tag {
		return 0, fmt.Errorf("ipmi: short or stray Open Session Response % x", p)
	}
	if p[1] != 0 {
		return 0, fmt.Errorf("ipmi: Open Session refused, status 0x%02x", p[1])
	}
	if len(p) < 36 || binary.LittleEndian.Uint32(p[4:]) != csid {
		return 0, fmt.Errorf("ipmi: malformed Open Session Response % x", p)
	}
	// Three 8-octet algorithm records after the 12-octet head: type, 0, 0, 8, algorithm.
	if p[12] != 0 || p[16]&0x3f != 1 || p[20] != 1 || p[24]&0x3f != 1 || p[28] != 2 || p[32]&0x3f != 1 {
		return 0, fmt.Errorf("ipmi: BMC chose other algorithms: % x", p[12:36])
	}
	return binary.LittleEndian.Uint32(p[8:]), nil
}

// rakpState holds one handshake's values (names as in the specification: m the console,
// c the managed system).
type rakpState struct {
	tag        byte
	sidm, sidc uint32 // console and managed system session ids
	rm, rc     [16]byte
	guidc      [16]byte
	role       byte
	user, kuid []byte
	sik        []byte
}

// sameTag accepts a handshake reply carrying this handshake's message tag.
func (s *rakpState) sameTag(r rmcpPlusReply) error {
	if len(r.payload) == 0 || r.payload[0] != s.tag {
		return fmt.Errorf("ipmi: reply with message tag % x, want %d", r.payload[:min(1, len(r.payload))], s.tag)
	}
	return nil
}

func (s *rakpState) rakp1() []byte {
	b := []byte{s.tag, 0, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, s.sidc)
	b = append(b, s.rm[:]...)
	b = append(b, s.role, 0, 0, byte(len(s.user)))
	return append(b, s.user...)
}

func (s *rakpState) mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha1.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// rakp2 checks RAKP 2 (its key exchange code proves the BMC knows the password) and keeps
// Rc and GUIDc.
func (s *rakpState) rakp2(p []byte) error {
	if len(p) < 8 || p[0] != s.tag {
		return fmt.Errorf("ipmi: short or stray RAKP 2 % x", p)
	}
	if p[1] != 0 {
		return fmt.Errorf("ipmi: RAKP 2 status 0x%02x", p[1])
	}
	if len(p) != 40+sha1Len || binary.LittleEndian.Uint32(p[4:]) != s.sidm {
		return fmt.Errorf("ipmi: malformed RAKP 2 % x", p)
	}
	copy(s.rc[:], p[8:24])
	copy(s.guidc[:], p[24:40])
	want := s.mac(s.kuid, le32(s.sidm), le32(s.sidc), s.rm[:], s.rc[:], s.guidc[:],
		[]byte{s.role, byte(len(s.user))}, s.user)
	if !hmac.Equal(want, p[40:]) {
		return errors.New("ipmi: RAKP 2 key exchange code does not match the password")
	}
	s.sik = s.mac(s.kuid, s.rm[:], s.rc[:], []byte{s.role, byte(len(s.user))}, s.user)
	return nil
}

func (s *rakpState) rakp3() []byte {
	b := []byte{s.tag, 0, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, s.sidc)
	return append(b, s.mac(s.kuid, s.rc[:], le32(s.sidm), []byte{s.role, byte(len(s.user))}, s.user)...)
}

func (s *rakpState) rakp4(p []byte) error {
	if len(p) < 8 || p[0] != s.tag {
		return fmt.Errorf("ipmi: short or stray RAKP 4 % x", p)
	}
	if p[1] != 0 {
		return fmt.Errorf("ipmi: RAKP 4 status 0x%02x", p[1])
	}
	if len(p) != 8+sha1_96Len || binary.LittleEndian.Uint32(p[4:]) != s.sidm {
		return fmt.Errorf("ipmi: malformed RAKP 4 % x", p)
	}
	if !hmac.Equal(s.mac(s.sik, s.rm[:], le32(s.sidc), s.guidc[:])[:sha1_96Len], p[8:]) {
		return errors.New("ipmi: RAKP 4 integrity check value wrong")
	}
	return nil
}

// keys derives K1 (integrity) and K2 (confidentiality) from the SIK.
func (s *rakpState) keys() (k1, k2 []byte) {
	return s.mac(s.sik, bytes.Repeat([]byte{1}, sha1Len)), s.mac(s.sik, bytes.Repeat([]byte{2}, sha1Len))
}

func ipmiChecksum(b []byte) byte {
	var c byte
	for _, x := range b {
		c += x
	}
	return -c
}

// ipmiRequest is an IPMI LAN message from software id 0x81 to the BMC (0x20).
func ipmiRequest(netfn, cmd, rqSeq byte, data []byte) []byte {
	b := []byte{0x20, netfn << 2}
	b = append(b, ipmiChecksum(b))
	b = append(b, 0x81, rqSeq<<2, cmd)
	b = append(b, data...)
	return append(b, ipmiChecksum(b[3:]))
}

// parseIPMIResponse checks a response's addresses, checksums, netfn, sequence and command
// and returns the completion code and data.
func parseIPMIResponse(b []byte, netfn, cmd, rqSeq byte) (byte, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("ipmi: short message % x", b)
	}
	if ipmiChecksum(b[:2]) != b[2] || ipmiChecksum(b[3:len(b)-1]) != b[len(b)-1] {
		return 0, nil, fmt.Errorf("ipmi: bad checksum % x", b)
	}
	if b[0] != 0x81 || b[1]>>2 != netfn|1 || b[3] != 0x20 || b[4]>>2 != rqSeq || b[5] != cmd {
		return 0, nil, fmt.Errorf("ipmi: response for another request % x", b)
	}
	return b[6], b[7 : len(b)-1], nil
}

// ipmiClient is a console on one UDP socket.
type ipmiClient struct {
	c       net.Conn
	buf     []byte
	o       opts
	tag     byte
	rqSeq   byte
	seq     uint32 // outbound session sequence number
	sidm    uint32 // console session id: the id in the BMC's session packets
	sidc    uint32 // managed system session id: the id in ours
	k1, k2  []byte
	lastIn  uint32 // highest inbound session sequence number seen
	timeout time.Duration
}

// exchange sends one packet and returns the first reply of the wanted payload type that
// accept takes. Replies that fail either (late answers to a request that timed out) are
// skipped until the deadline; the deadline then reports the last reason one was skipped.
func (ic *ipmiClient) exchange(pkt []byte, k1, k2 []byte, want byte, accept func(rmcpPlusReply) error) (rmcpPlusReply, error) {
	if _, err := ic.c.Write(pkt); err != nil {
		return rmcpPlusReply{}, err
	}
	ic.c.SetReadDeadline(time.Now().Add(ic.timeout))
	var skipped error
	for {
		n, err := ic.c.Read(ic.buf)
		if err != nil {
			if skipped != nil && isTimeout(err) {
				return rmcpPlusReply{}, skipped
			}
			return rmcpPlusReply{}, err
		}
		r, err := parseRMCPPlus(ic.buf[:n], k1, k2)
		if err == nil && r.ptype != want {
			err = fmt.Errorf("ipmi: payload type 0x%02x, want 0x%02x", r.ptype, want)
		}
		if err == nil && accept != nil {
			err = accept(r)
		}
		if err == nil {
			return r, nil
		}
		skipped = err
	}
}

// open runs Open Session and RAKP 1–4, leaving the session keys in ic.
func (ic *ipmiClient) open() error {
	ic.tag++
	s := &rakpState{tag: ic.tag, role: privAdmin | nameOnlyLookup, user: []byte(ic.o.user), kuid: make([]byte, sha1Len)}
	copy(s.kuid, ic.o.password)
	var id [4]byte
	rand.Read(id[:])
	s.sidm = binary.LittleEndian.Uint32(id[:]) | 1
	rand.Read(s.rm[:])
	pkt, _ := rmcpPlusPacket(payloadOpenReq, 0, 0, openSessionRequest(s.tag, s.sidm), nil, nil)
	r, err := ic.exchange(pkt, nil, nil, payloadOpenResp, s.sameTag)
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	if s.sidc, err = parseOpenSessionResponse(r.payload, s.tag, s.sidm); err != nil {
		return err
	}
	pkt, _ = rmcpPlusPacket(payloadRAKP1, 0, 0, s.rakp1(), nil, nil)
	if r, err = ic.exchange(pkt, nil, nil, payloadRAKP2, s.sameTag); err != nil {
		return fmt.Errorf("RAKP 1: %w", err)
	}
	if err := s.rakp2(r.payload); err != nil {
		return err
	}
	pkt, _ = rmcpPlusPacket(payloadRAKP3, 0, 0, s.rakp3(), nil, nil)
	if r, err = ic.exchange(pkt, nil, nil, payloadRAKP4, s.sameTag); err != nil {
		return fmt.Errorf("RAKP 3: %w", err)
	}
	if err := s.rakp4(r.payload); err != nil {
		return err
	}
	ic.sidm, ic.sidc = s.sidm, s.sidc
	ic.k1, ic.k2 = s.keys()
	ic.seq, ic.lastIn = 0, 0
	return nil
}

// command sends one IPMI request in the session and returns the response data; a
// completion code other than 0 is an error.
func (ic *ipmiClient) command(netfn, cmd byte, data []byte) ([]byte, error) {
	ic.seq++
	ic.rqSeq = (ic.rqSeq + 1) & 0x3f
	pkt, err := rmcpPlusPacket(payloadIPMI, ic.sidc, ic.seq, ipmiRequest(netfn, cmd, ic.rqSeq, data), ic.k1, ic.k2)
	if err != nil {
		return nil, err
	}
	var cc byte
	var d []byte
	_, err = ic.exchange(pkt, ic.k1, ic.k2, payloadIPMI, func(r rmcpPlusReply) error {
		if r.sid != ic.sidm {
			return fmt.Errorf("ipmi: reply for session 0x%08x", r.sid)
		}
		// The BMC's sequence numbers rise.
		if r.seq <= ic.lastIn {
			return fmt.Errorf("ipmi: BMC sequence number %d after %d", r.seq, ic.lastIn)
		}
		var err error
		if cc, d, err = parseIPMIResponse(r.payload, netfn, cmd, ic.rqSeq); err != nil {
			return err
		}
		ic.lastIn = r.seq
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cc != 0 {
		return nil, fmt.Errorf("ipmi: netfn 0x%02x cmd 0x%02x completion code 0x%02x", netfn, cmd, cc)
	}
	return d, nil
}

func (ic *ipmiClient) close() error {
	_, err := ic.command(0x06, 0x3C, le32(ic.sidc))
	ic.k1, ic.k2 = nil, nil
	return err
}

func (ic *ipmiClient) chassisStatus() error {
	d, err := ic.command(0x00, 0x01, nil)
	if err == nil && len(d) < 3 {
		err = fmt.Errorf("ipmi: chassis status of %d octets", len(d))
	}
	return err
}

func dialIPMI(target string, o opts) (*ipmiClient, error) {
	c, err := net.Dial("udp", target)
	if err != nil {
		return nil, fmt.Errorf("ipmi: %w", err)
	}
	return &ipmiClient{c: c, buf: make([]byte, 2048), o: o, timeout: time.Second}, nil
}

// isTimeout reports a lost reply (counted as a failed request, the loop goes on).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ipmiSessionLoad opens and closes a whole RMCP+ session per request.
type ipmiSessionLoad struct{ o opts }

func newIPMISession(o opts) workload { return &ipmiSessionLoad{o} }

func (l *ipmiSessionLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	ic, err := dialIPMI(target, l.o)
	if err != nil {
		return err
	}
	defer ic.c.Close()
	for ctx.Err() == nil {
		sent := time.Now()
		err := ic.open()
		if err == nil {
			err = ic.close()
		}
		rec.record(sent, err)
		if err != nil && !isTimeout(err) {
			return fmt.Errorf("ipmi: %w", err)
		}
		if budget.Add(-1) <= 0 {
			return nil
		}
	}
	return nil
}

// ipmiChassisLoad opens one session per socket and sends Get Chassis Status in it.
type ipmiChassisLoad struct{ o opts }

func newIPMIChassis(o opts) workload { return &ipmiChassisLoad{o} }

func (l *ipmiChassisLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	ic, err := dialIPMI(target, l.o)
	if err != nil {
		return err
	}
	defer ic.c.Close()
	if err := ic.open(); err != nil {
		return fmt.Errorf("ipmi: %w", err)
	}
	defer ic.close()
	for ctx.Err() == nil {
		sent := time.Now()
		err := ic.chassisStatus()
		rec.record(sent, err)
		if err != nil && !isTimeout(err) {
			return err
		}
		if budget.Add(-1) <= 0 {
			return nil
		}
	}
	return nil
}
