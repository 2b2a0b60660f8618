package snmp

import "errors"

// SNMP versions as carried on the wire.
const (
	version1  = 0
	version2c = 1
	version3  = 3
)

// msgFlags bits (RFC 3412).
const (
	flagAuth       = 0x01
	flagPriv       = 0x02
	flagReportable = 0x04
)

// maxVarbinds bounds the variable bindings decoded from one request.
const maxVarbinds = 512

// varbind is one variable binding of a request; the slices point into the request.
type varbind struct {
	oid []byte // OID content
	tag byte
	val []byte // value content
	raw []byte // the whole varbind TLV
}

// pdu is a decoded PDU. For GetBulk, errStatus holds non-repeaters and errIndex
// max-repetitions.
type pdu struct {
	typ       byte
	reqID     int32
	errStatus int32
	errIndex  int32
	vbs       []varbind
}

// usmParams are the UsmSecurityParameters of a v3 message (RFC 3414).
type usmParams struct {
	engineID   []byte
	boots      int32
	time       int32
	user       []byte
	authParams []byte
	privParams []byte
}

// message is a decoded SNMP message. Every slice points into the decoded buffer.
type message struct {
	version   int32
	community []byte

	msgID      int32
	maxSize    int32
	flags      byte
	secModel   int32
	usm        usmParams
	authOffset int    // offset of usm.authParams in the message, -1 when absent
	encrypted  []byte // msgData when it is an encrypted scoped PDU
	ctxEngine  []byte
	ctxName    []byte
	pdu        pdu
}

var (
	errVersion = errors.New("unsupported SNMP version")
	errPDUType = errors.New("unknown PDU type")
)

// decodeMessage decodes b into m (reusing m's varbind storage). For v3 messages whose
// scoped PDU is encrypted, m.encrypted is set and m.pdu is left empty: call decodeScoped
// on the plaintext.
func decodeMessage(b []byte, m *message) error {
	vbs := m.vbStorage()
	*m = message{authOffset: -1}
	m.pdu.vbs = vbs
	body, _, err := expect(b, tagSequence)
	if err != nil {
		return err
	}
	v, body, err := readInt32(body)
	if err != nil {
		return err
	}
	m.version = v
	switch v {
	case version1, version2c:
		if m.community, body, err = expect(body, tagOctetString); err != nil {
			return err
		}
		return decodePDU(body, &m.pdu)
	case version3:
		return decodeV3(b, body, m)
	}
	return errVersion
}

func (m *message) vbStorage() []varbind {
	if m.pdu.vbs == nil {
		return make([]varbind, 0, 16)
	}
	return m.pdu.vbs[:0]
}

func decodeV3(whole, body []byte, m *message) error {
	hdr, body, err := expect(body, tagSequence)
	if err != nil {
		return err
	}
	if m.msgID, hdr, err = readInt32(hdr); err != nil {
		return err
	}
	if m.maxSize, hdr, err = readInt32(hdr); err != nil {
		return err
	}
	fl, hdr, err := expect(hdr, tagOctetString)
	if err != nil || len(fl) != 1 {
		return errBER
	}
	m.flags = fl[0]
	if m.secModel, _, err = readInt32(hdr); err != nil {
		return err
	}
	sp, body, err := expect(body, tagOctetString)
	if err != nil {
		return err
	}
	if m.secModel == 3 {
		if err := decodeUSM(whole, sp, m); err != nil {
			return err
		}
	}
	tag, data, _, err := readTLV(body)
	if err != nil {
		return err
	}
	switch tag {
	case tagOctetString:
		m.encrypted = data
		return nil
	case tagSequence:
		return decodeScopedContent(data, m)
	}
	return errBER
}

func decodeUSM(whole, sp []byte, m *message) error {
	seq, _, err := expect(sp, tagSequence)
	if err != nil {
		return err
	}
	u := &m.usm
	if u.engineID, seq, err = expect(seq, tagOctetString); err != nil {
		return err
	}
	if u.boots, seq, err = readInt32(seq); err != nil {
		return err
	}
	if u.time, seq, err = readInt32(seq); err != nil {
		return err
	}
	if u.user, seq, err = expect(seq, tagOctetString); err != nil {
		return err
	}
	if u.authParams, seq, err = expect(seq, tagOctetString); err != nil {
		return err
	}
	if u.privParams, _, err = expect(seq, tagOctetString); err != nil {
		return err
	}
	if len(u.engineID) > 32 || len(u.user) > 32 {
		return errBER
	}
	// Both slices share whole's backing array, so the difference of their capacities is
	// the offset of the authentication parameters in the message.
	m.authOffset = cap(whole) - cap(u.authParams)
	if m.authOffset < 0 || m.authOffset+len(u.authParams) > len(whole) {
		m.authOffset = -1
		return errBER
	}
	return nil
}

// decodeScoped decodes a plaintext ScopedPDU TLV (after decryption) into m.
func decodeScoped(b []byte, m *message) error {
	c, _, err := expect(b, tagSequence)
	if err != nil {
		return err
	}
	return decodeScopedContent(c, m)
}

func decodeScopedContent(c []byte, m *message) error {
	var err error
	if m.ctxEngine, c, err = expect(c, tagOctetString); err != nil {
		return err
	}
	if m.ctxName, c, err = expect(c, tagOctetString); err != nil {
		return err
	}
	return decodePDU(c, &m.pdu)
}

func decodePDU(b []byte, p *pdu) error {
	tag, c, _, err := readTLV(b)
	if err != nil {
		return err
	}
	switch tag {
	case pduGet, pduGetNext, pduResponse, pduSet, pduGetBulk, pduInform, pduTrapV2, pduReport:
	case pduTrapV1:
		p.typ = tag
		return nil // v1 traps have another layout; an agent ignores them
	default:
		return errPDUType
	}
	p.typ = tag
	if p.reqID, c, err = readInt32(c); err != nil {
		return err
	}
	if p.errStatus, c, err = readInt32(c); err != nil {
		return err
	}
	if p.errIndex, c, err = readInt32(c); err != nil {
		return err
	}
	list, _, err := expect(c, tagSequence)
	if err != nil {
		return err
	}
	for len(list) > 0 {
		vb, rest, err := expect(list, tagSequence)
		if err != nil {
			return err
		}
		raw := list[:len(list)-len(rest)]
		list = rest
		oid, vrest, err := expect(vb, tagOID)
		if err != nil {
			return err
		}
		if len(oid) == 0 || len(oid) > 4*maxOIDLen {
			return errBER
		}
		vtag, val, _, err := readTLV(vrest)
		if err != nil {
			return err
		}
		if len(p.vbs) >= maxVarbinds {
			return errBER
		}
		p.vbs = append(p.vbs, varbind{oid: oid, tag: vtag, val: val, raw: raw})
	}
	return nil
}

// pduLen returns the size of a PDU's content with the given varbind list content size.
func pduContentLen(reqID int32, es, ei int, vbLen int) int {
	return tlvLen(intContentLen(int64(reqID))) + tlvLen(intContentLen(int64(es))) +
		tlvLen(intContentLen(int64(ei))) + tlvLen(vbLen)
}

// appendPDU appends a PDU whose varbind list content is vbs.
func appendPDU(b []byte, typ byte, reqID int32, es, ei int, vbs []byte) []byte {
	b = appendHeader(b, typ, pduContentLen(reqID, es, ei, len(vbs)))
	b = appendInt(b, tagInteger, int64(reqID))
	b = appendInt(b, tagInteger, int64(es))
	b = appendInt(b, tagInteger, int64(ei))
	b = appendHeader(b, tagSequence, len(vbs))
	return append(b, vbs...)
}

// appendCommunityMessage appends a v1/v2c message carrying one PDU.
func appendCommunityMessage(b []byte, version int32, community []byte, typ byte, reqID int32, es, ei int, vbs []byte) []byte {
	pl := tlvLen(pduContentLen(reqID, es, ei, len(vbs)))
	b = appendHeader(b, tagSequence, tlvLen(intContentLen(int64(version)))+tlvLen(len(community))+pl)
	b = appendInt(b, tagInteger, int64(version))
	b = appendOctets(b, tagOctetString, community)
	return appendPDU(b, typ, reqID, es, ei, vbs)
}

// appendScoped appends a plaintext ScopedPDU.
func appendScoped(b []byte, ctxEngine, ctxName []byte, typ byte, reqID int32, es, ei int, vbs []byte) []byte {
	pl := tlvLen(pduContentLen(reqID, es, ei, len(vbs)))
	b = appendHeader(b, tagSequence, tlvLen(len(ctxEngine))+tlvLen(len(ctxName))+pl)
	b = appendOctets(b, tagOctetString, ctxEngine)
	b = appendOctets(b, tagOctetString, ctxName)
	return appendPDU(b, typ, reqID, es, ei, vbs)
}

// v3Header is what a v3 message carries around its msgData.
type v3Header struct {
	msgID    int32
	maxSize  int32
	flags    byte
	engineID []byte
	boots    int32
	time     int32
	user     []byte
	authLen  int // zero bytes reserved for the MAC
	privSalt []byte
}

// appendV3Message appends a v3 message whose msgData TLV is data. It returns the message
// and the offset of the reserved authentication parameters (-1 when authLen is 0).
func appendV3Message(b []byte, h *v3Header, data []byte) ([]byte, int) {
	global := tlvLen(intContentLen(int64(h.msgID))) + tlvLen(intContentLen(int64(h.maxSize))) + tlvLen(1) + tlvLen(1)
	usm := tlvLen(len(h.engineID)) + tlvLen(intContentLen(int64(h.boots))) + tlvLen(intContentLen(int64(h.time))) +
		tlvLen(len(h.user)) + tlvLen(h.authLen) + tlvLen(len(h.privSalt))
	total := tlvLen(1) + tlvLen(global) + tlvLen(tlvLen(usm)) + len(data)
	start := len(b)
	b = appendHeader(b, tagSequence, total)
	b = appendInt(b, tagInteger, version3)
	b = appendHeader(b, tagSequence, global)
	b = appendInt(b, tagInteger, int64(h.msgID))
	b = appendInt(b, tagInteger, int64(h.maxSize))
	b = append(b, tagOctetString, 1, h.flags)
	b = appendInt(b, tagInteger, 3)
	b = appendHeader(b, tagOctetString, tlvLen(usm))
	b = appendHeader(b, tagSequence, usm)
	b = appendOctets(b, tagOctetString, h.engineID)
	b = appendInt(b, tagInteger, int64(h.boots))
	b = appendInt(b, tagInteger, int64(h.time))
	b = appendOctets(b, tagOctetString, h.user)
	b = appendHeader(b, tagOctetString, h.authLen)
	off := -1
	if h.authLen > 0 {
		off = len(b) - start
		for i := 0; i < h.authLen; i++ {
			b = append(b, 0)
		}
	}
	b = appendOctets(b, tagOctetString, h.privSalt)
	return append(b, data...), off
}
