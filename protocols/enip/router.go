package enip

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
)

// note records one CIP request for the event.
func (x *exec) note(svc byte, p *cipPath, status byte) {
	e := &x.ev
	if e.status <= 0 {
		e.status = int(status)
	}
	var class uint32
	if p != nil {
		class = p.Class
	}
	if len(e.services) < maxEventItems {
		e.services = append(e.services, serviceName(svc, class))
	}
	if p == nil {
		return
	}
	if p.Symbol != nil && len(e.tags) < maxEventItems {
		e.tags = append(e.tags, tagRef{sym: p.Symbol}) // copied only for an event that is kept
	} else if p.HasClass && len(e.paths) < maxEventItems {
		e.paths = append(e.paths, pathString(p))
	}
}

// pathString writes a path as cpppo's @class/instance/attribute.
func pathString(p *cipPath) string {
	var b strings.Builder
	b.WriteString("@")
	b.WriteString(strconv.FormatUint(uint64(p.Class), 10))
	if p.HasInstance {
		b.WriteString("/" + strconv.FormatUint(uint64(p.Instance), 10))
		if p.HasAttribute {
			b.WriteString("/" + strconv.FormatUint(uint64(p.Attribute), 10))
		}
	}
	return b.String()
}

// request executes the Message Router request msg and appends its reply to dst. depth is
// 0 for a request of its own and 1 inside a Multiple Service Packet or Unconnected Send,
// which do not nest. max bounds the reply.
func (x *exec) request(dst, msg []byte, depth, max int) []byte {
	req, err := parseRequest(msg)
	if err != nil {
		var svc byte
		if len(msg) > 0 {
			svc = msg[0] &^ replyBit
		}
		x.note(svc, nil, gsPathSizeInvalid)
		return appendReply(dst, svc, gsPathSizeInvalid, nil, nil)
	}
	svc := req.Service &^ replyBit
	p, err := parsePath(req.Path)
	if err != nil || req.Service&replyBit != 0 {
		x.note(svc, nil, gsPathSegmentError)
		return appendReply(dst, svc, gsPathSegmentError, nil, nil)
	}
	start := len(dst)
	var status byte
	var ext []uint16
	switch {
	case p.Symbol != nil:
		dst, status, ext = x.tagService(dst, svc, &p, req.Data, max)
	case !p.HasClass:
		status = gsPathSegmentError
	case p.Class == classConnectionManager && svc == svcUnconnectedSend && depth == 0 && (!p.HasInstance || p.Instance == 1):
		msg, st := unconnectedSend(req.Data)
		x.note(svc, &p, st)
		if st != gsSuccess {
			return appendReply(dst, svc, st, nil, nil)
		}
		// The route ends at this controller: the embedded request's reply is the reply.
		return x.request(dst, msg, 1, max)
	case p.Class == classConnectionManager:
		dst, status, ext = x.connectionManager(dst, svc, &p, req.Data)
	case p.Class == classMessageRouter && svc == svcMultipleService:
		if depth > 0 || !p.HasInstance || p.Instance != 1 {
			status = gsServiceNotSupported
			break
		}
		// the embedded requests are noted themselves
		return x.multiple(dst, req.Data, max)
	case p.Class == classSymbol:
		if svc != svcGetInstanceAttributeList {
			status = gsServiceNotSupported
			break
		}
		dst, status = x.symbolList(dst, &p, req.Data, max)
	default:
		dst, status = x.attributeService(dst, svc, &p, req.Data)
	}
	x.note(svc, &p, status)
	keepData := status == gsSuccess || status == gsPartialTransfer || status == gsAttributeListError ||
		(status == gsConnectionFailure && p.Class == classConnectionManager)
	if !keepData {
		dst = dst[:start]
		return appendReply(dst, svc, status, ext, nil)
	}
	if status == gsSuccess && len(dst)-start > max-4 {
		x.ev.status = int(gsReplyTooLarge)
		return appendReply(dst[:start], svc, gsReplyTooLarge, nil, nil)
	}
	return insertReply(dst, start, svc, status, ext)
}

// maxKeptImage bounds the tag image scratch a connection keeps between reads.
const maxKeptImage = 16 << 10

// extBeyond is the extended status of a read or write past a tag's end; read only.
var extBeyond = []uint16{extBeyondEnd}

// insertReply puts the reply header of a service's answer in front of the data already
// appended to dst from start, moving the data in place.
func insertReply(dst []byte, start int, svc, status byte, ext []uint16) []byte {
	hl := 4 + 2*len(ext)
	end := len(dst)
	dst = append(dst, make([]byte, hl)...)
	copy(dst[start+hl:], dst[start:end])
	appendReply(dst[start:start], svc, status, ext, nil)
	return dst
}

// gsReplyTooLarge is general status 0x11.
const gsReplyTooLarge byte = 0x11

// attributeService runs Get Attributes All / Single / List, Set Attribute Single and Reset
// on the device's objects and on tags the profile maps to class/instance/attribute.
func (x *exec) attributeService(dst []byte, svc byte, p *cipPath, data []byte) ([]byte, byte) {
	inst := uint32(0)
	if p.HasInstance {
		inst = p.Instance
	}
	if !isObjectClass(p.Class) {
		return x.tagAttribute(dst, svc, p, data)
	}
	switch svc {
	case svcGetAttributeSingle:
		if !p.HasAttribute {
			return dst, gsPathSegmentError
		}
		return x.attribute(dst, p.Class, inst, p.Attribute)
	case svcGetAttributesAll:
		if p.Class == classConnectionManager {
			return dst, gsServiceNotSupported
		}
		if inst == 0 {
			dst = binary.LittleEndian.AppendUint16(dst, classRevision(p.Class))
			return binary.LittleEndian.AppendUint16(dst, 1), gsSuccess
		}
		if inst != 1 {
			return dst, gsObjectDoesNotExist
		}
		for _, a := range allAttributes(p.Class) {
			dst, _ = x.attribute(dst, p.Class, inst, a)
		}
		return dst, gsSuccess
	case svcGetAttributeList:
		if len(data) < 2 {
			return dst, gsNotEnoughData
		}
		n := int(binary.LittleEndian.Uint16(data))
		if n == 0 {
			return dst, gsInvalidParameter
		}
		if len(data) < 2+2*n {
			return dst, gsNotEnoughData
		}
		if len(data) > 2+2*n {
			return dst, gsTooMuchData
		}
		status := gsSuccess
		dst = binary.LittleEndian.AppendUint16(dst, uint16(n))
		for i := 0; i < n; i++ {
			a := binary.LittleEndian.Uint16(data[2+2*i:])
			dst = binary.LittleEndian.AppendUint16(dst, a)
			at := len(dst)
			dst = append(dst, 0, 0)
			var st byte
			dst, st = x.attribute(dst, p.Class, inst, uint32(a))
			if st != gsSuccess {
				if st == gsObjectDoesNotExist || st == gsPathDestUnknown {
					return dst, st
				}
				status = gsAttributeListError
				dst[at] = st
			}
		}
		return dst, status
	case svcSetAttributeSingle:
		if !p.HasAttribute {
			return dst, gsPathSegmentError
		}
		x.ev.write = true
		if _, st := x.attribute(nil, p.Class, inst, p.Attribute); st != gsSuccess {
			return dst, st
		}
		return dst, gsAttributeNotSettable
	case svcReset:
		if p.Class != classIdentity {
			return dst, gsServiceNotSupported
		}
		if inst != 1 {
			return dst, gsObjectDoesNotExist
		}
		x.ev.write = true
		return dst, gsSuccess
	}
	return dst, gsServiceNotSupported
}

// tagAttribute runs Get/Set Attribute Single on a tag the profile maps to
// class/instance/attribute (Conpot's <addr>).
func (x *exec) tagAttribute(dst []byte, svc byte, p *cipPath, data []byte) ([]byte, byte) {
	classKnown, instKnown := false, false
	for _, t := range x.svc.cfg.tags {
		if t.hasAddr && t.addr[0] == p.Class {
			classKnown = true
			if p.HasInstance && t.addr[1] == p.Instance {
				instKnown = true
			}
		}
	}
	switch {
	case !classKnown:
		return dst, gsPathDestUnknown
	case !instKnown:
		return dst, gsObjectDoesNotExist
	case svc != svcGetAttributeSingle && svc != svcSetAttributeSingle:
		return dst, gsServiceNotSupported
	case !p.HasAttribute:
		return dst, gsPathSegmentError
	}
	t := x.svc.cfg.byAddr[[3]uint32{p.Class, p.Instance, p.Attribute}]
	if t == nil {
		return dst, gsAttributeUnsupported
	}
	x.noteTag(t)
	if svc == svcGetAttributeSingle {
		return t.appendElements(dst, t.values(x.db), 0, t.size), gsSuccess
	}
	x.ev.write = true
	var n int
	if t.typ.size > 0 {
		if len(data) == 0 || len(data)%t.typ.size != 0 {
			return dst, gsNotEnoughData
		}
		n = len(data) / t.typ.size
	} else {
		n = countShortStrings(data)
	}
	if n > t.size {
		return dst, gsTooMuchData
	}
	elems, err := t.decodeElements(data, n)
	if err != nil || n == 0 {
		return dst, gsNotEnoughData
	}
	if x.db == nil {
		return dst, gsResourceUnavailable
	}
	t.store(x.db, &x.dev.tagMu, 0, elems)
	return dst, gsSuccess
}

// countShortStrings counts the SHORT_STRINGs b holds, up to maxTagElements+1.
func countShortStrings(b []byte) int {
	n := 0
	for len(b) > 0 && n <= maxTagElements {
		l := 1 + int(b[0])
		if l > len(b) {
			return n + 1 // the last one is truncated: decoding reports it
		}
		b = b[l:]
		n++
	}
	return n
}

func (x *exec) noteTag(t *tag) {
	if len(x.ev.tags) < maxEventItems {
		x.ev.tags = append(x.ev.tags, tagRef{name: t.name})
	}
}

// tagService runs the Logix tag services on a symbolic path.
func (x *exec) tagService(dst []byte, svc byte, p *cipPath, data []byte, max int) ([]byte, byte, []uint16) {
	switch svc {
	case svcReadTag, svcReadTagFragmented, svcWriteTag, svcWriteTagFragmented:
	default:
		return dst, gsServiceNotSupported, nil
	}
	t := x.svc.cfg.tagNamed(p.Symbol)
	if t == nil {
		return dst, gsPathSegmentError, nil
	}
	index := 0
	if p.NumElements > 1 {
		return dst, gsPathSegmentError, nil
	}
	if p.NumElements == 1 {
		if p.Elements[0] >= uint32(t.size) {
			return dst, gsPathDestUnknown, nil
		}
		index = int(p.Elements[0])
	}
	if svc == svcReadTag || svc == svcReadTagFragmented {
		need := 2
		if svc == svcReadTagFragmented {
			need = 6
		}
		if len(data) < need {
			return dst, gsNotEnoughData, nil
		}
		count := max1(int(binary.LittleEndian.Uint16(data)))
		if index+count > t.size {
			return dst, gsGeneralError, extBeyond
		}
		img := t.appendElements(x.img[:0], t.values(x.db), index, count)
		if cap(img) <= maxKeptImage {
			x.img = img // scratch for the next read: a read allocates nothing
		}
		off := 0
		if svc == svcReadTagFragmented {
			o := binary.LittleEndian.Uint32(data[2:])
			if o >= uint32(len(img)) {
				return dst, gsGeneralError, extBeyond
			}
			off = int(o)
		}
		dst = t.appendTypeCode(dst)
		room := max - 4 - 4 // reply header, type code
		chunk := img[off:]
		status := gsSuccess
		if len(chunk) > room {
			n := room
			if t.typ.size > 0 {
				n -= n % t.typ.size
			}
			chunk, status = chunk[:n], gsPartialTransfer
		}
		return append(dst, chunk...), status, nil
	}
	// Write Tag (Fragmented): type, [handle], count, [offset], data
	x.ev.write = true
	if len(data) < 2 {
		return dst, gsNotEnoughData, nil
	}
	typ := binary.LittleEndian.Uint16(data)
	data = data[2:]
	if typ == typeStruct {
		if len(data) < 2 {
			return dst, gsNotEnoughData, nil
		}
		if binary.LittleEndian.Uint16(data) != handleSTR {
			return dst, gsGeneralError, []uint16{extTypeMismatch}
		}
		data = data[2:]
	}
	if typ != t.typ.code {
		return dst, gsGeneralError, []uint16{extTypeMismatch}
	}
	if len(data) < 2 {
		return dst, gsNotEnoughData, nil
	}
	count := max1(int(binary.LittleEndian.Uint16(data)))
	data = data[2:]
	if index+count > t.size {
		return dst, gsGeneralError, extBeyond
	}
	if x.db == nil {
		return dst, gsResourceUnavailable, nil
	}
	if svc == svcWriteTagFragmented {
		if len(data) < 4 {
			return dst, gsNotEnoughData, nil
		}
		off := int(binary.LittleEndian.Uint32(data) & 0xFFFFFF)
		data = data[4:]
		img := t.appendElements(x.img[:0], t.values(x.db), index, count)
		if cap(img) <= maxKeptImage {
			x.img = img // the image this write patches, decoded below: scratch as well
		}
		if off > len(img) || len(data) > len(img)-off {
			return dst, gsGeneralError, extBeyond
		}
		copy(img[off:], data)
		data = img
	}
	elems, err := t.decodeElements(data, count)
	switch {
	case errors.Is(err, errShort):
		return dst, gsNotEnoughData, nil
	case err != nil:
		return dst, gsTooMuchData, nil
	}
	t.store(x.db, &x.dev.tagMu, index, elems)
	return dst, gsSuccess, nil
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// multiple runs a Multiple Service Packet (CIP Vol. 1, A-4.10).
func (x *exec) multiple(dst, data []byte, max int) []byte {
	fail := func(st byte) []byte {
		x.note(svcMultipleService, nil, st)
		return appendReply(dst, svcMultipleService, st, nil, nil)
	}
	if len(data) < 2 {
		return fail(gsNotEnoughData)
	}
	n := int(binary.LittleEndian.Uint16(data))
	if n == 0 || len(data) < 2+2*n {
		return fail(gsNotEnoughData)
	}
	offs := make([]int, n+1)
	for i := 0; i < n; i++ {
		offs[i] = int(binary.LittleEndian.Uint16(data[2+2*i:]))
	}
	offs[n] = len(data)
	for i := 0; i < n; i++ {
		if offs[i] < 2+2*n || offs[i] > offs[i+1] {
			return fail(gsInvalidParameter)
		}
	}
	x.note(svcMultipleService, nil, gsSuccess)
	start := len(dst)
	dst = appendReply(dst, svcMultipleService, gsSuccess, nil, nil)
	base := len(dst)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(n))
	dst = append(dst, make([]byte, 2*n)...)
	status := gsSuccess
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint16(dst[base+2+2*i:], uint16(len(dst)-base))
		at := len(dst)
		dst = x.request(dst, data[offs[i]:offs[i+1]], 1, max)
		if dst[at+2] != gsSuccess {
			status = gsEmbeddedServiceError
		}
		if len(dst)-start > max {
			x.ev.status = int(gsReplyTooLarge)
			return appendReply(dst[:start], svcMultipleService, gsReplyTooLarge, nil, nil)
		}
	}
	dst[start+2] = status
	return dst
}

// connectionManager runs Forward Open, Large Forward Open and Forward Close (CIP Vol. 1,
// 3-5.5); Unconnected Send is handled by request.
func (x *exec) connectionManager(dst []byte, svc byte, p *cipPath, data []byte) ([]byte, byte, []uint16) {
	if p.HasInstance && p.Instance != 1 {
		return dst, gsObjectDoesNotExist, nil
	}
	switch svc {
	case svcForwardOpen, svcLargeForwardOpen:
		return x.forwardOpen(dst, svc == svcLargeForwardOpen, data)
	case svcForwardClose:
		return x.forwardClose(dst, data)
	}
	return dst, gsServiceNotSupported, nil
}

// unconnectedSend returns the message an Unconnected Send carries (tick, timeout, size,
// message, pad, route size, reserved, route), checking that the route is only port segments.
func unconnectedSend(data []byte) ([]byte, byte) {
	if len(data) < 4 {
		return nil, gsNotEnoughData
	}
	l := int(binary.LittleEndian.Uint16(data[2:]))
	end := 4 + l + l&1
	if len(data) < end+2 {
		return nil, gsNotEnoughData
	}
	rest := data[end:]
	if len(rest) < 2+2*int(rest[0]) {
		return nil, gsNotEnoughData
	}
	route, err := parsePath(rest[2 : 2+2*int(rest[0])])
	if err != nil || route.HasClass || route.Symbol != nil {
		return nil, gsPathSegmentError
	}
	return data[4 : 4+l], gsSuccess
}

// forwardOpen opens a class 3 connection on a TCP connection.
func (x *exec) forwardOpen(dst []byte, large bool, data []byte) ([]byte, byte, []uint16) {
	fixed := 36
	if large {
		fixed = 40
	}
	if len(data) < fixed {
		return dst, gsNotEnoughData, nil
	}
	le16, le32 := binary.LittleEndian.Uint16, binary.LittleEndian.Uint32
	toID := le32(data[6:])
	serial, vendor, orig := le16(data[10:]), le16(data[12:]), le32(data[14:])
	otRPI := le32(data[22:])
	var otSize int
	var toRPI uint32
	var trigger byte
	if large {
		otSize = int(le32(data[26:]) & 0xFFFF)
		toRPI = le32(data[30:])
		trigger = data[38]
	} else {
		otSize = int(le16(data[26:]) & 0x1FF)
		toRPI = le32(data[28:])
		trigger = data[34]
	}
	pathWords := int(data[fixed-1])
	fail := func(ext uint16) ([]byte, byte, []uint16) {
		dst = binary.LittleEndian.AppendUint16(dst, serial)
		dst = binary.LittleEndian.AppendUint16(dst, vendor)
		dst = binary.LittleEndian.AppendUint32(dst, orig)
		dst = append(dst, 0, 0)
		return dst, gsConnectionFailure, []uint16{ext}
	}
	if len(data) < fixed+2*pathWords {
		return dst, gsNotEnoughData, nil
	}
	cp, err := parsePath(data[fixed : fixed+2*pathWords])
	if err != nil || !cp.HasClass || cp.Class != classMessageRouter {
		return fail(extInvalidSegment)
	}
	if trigger&0x0F != 3 || x.conn == nil {
		return fail(0x0103) // transport class and trigger combination not supported
	}
	c := x.conn
	for _, o := range c.conns {
		if o.serial == serial && o.vendor == vendor && o.origSerial == orig {
			return fail(0x0100) // connection in use or duplicate Forward Open
		}
	}
	if len(c.conns) >= maxConnections {
		return fail(extNoMoreConnections)
	}
	if otSize < 4 || otSize > 4002 {
		return fail(0x0109) // invalid connection size
	}
	otID := rand.Uint32()
	for otID == 0 || c.find(otID) != nil {
		otID = rand.Uint32()
	}
	c.conns = append(c.conns, cipConn{otID: otID, toID: toID, serial: serial, vendor: vendor, origSerial: orig,
		maxSize: otSize - 2})
	dst = binary.LittleEndian.AppendUint32(dst, otID)
	dst = binary.LittleEndian.AppendUint32(dst, toID)
	dst = binary.LittleEndian.AppendUint16(dst, serial)
	dst = binary.LittleEndian.AppendUint16(dst, vendor)
	dst = binary.LittleEndian.AppendUint32(dst, orig)
	dst = binary.LittleEndian.AppendUint32(dst, otRPI)
	dst = binary.LittleEndian.AppendUint32(dst, toRPI)
	return append(dst, 0, 0), gsSuccess, nil
}

// forwardClose closes a connection opened on this TCP connection.
func (x *exec) forwardClose(dst []byte, data []byte) ([]byte, byte, []uint16) {
	if len(data) < 12 {
		return dst, gsNotEnoughData, nil
	}
	le16, le32 := binary.LittleEndian.Uint16, binary.LittleEndian.Uint32
	serial, vendor, orig := le16(data[2:]), le16(data[4:]), le32(data[6:])
	dst = binary.LittleEndian.AppendUint16(dst, serial)
	dst = binary.LittleEndian.AppendUint16(dst, vendor)
	dst = binary.LittleEndian.AppendUint32(dst, orig)
	dst = append(dst, 0, 0)
	if c := x.conn; c != nil {
		for i, o := range c.conns {
			if o.serial == serial && o.vendor == vendor && o.origSerial == orig {
				c.conns = append(c.conns[:i], c.conns[i+1:]...)
				return dst, gsSuccess, nil
			}
		}
	}
	return dst, gsConnectionFailure, []uint16{extConnectionNotFound}
}

// symbolList runs Get Instance Attribute List on the Symbol object: the controller's tags
// from the path's instance on, with their names (attribute 1), types (2), element sizes (7)
// and dimensions (8). Instance n is the profile's n-th tag.
func (x *exec) symbolList(dst []byte, p *cipPath, data []byte, max int) ([]byte, byte) {
	if len(data) < 2 {
		return dst, gsNotEnoughData
	}
	n := int(binary.LittleEndian.Uint16(data))
	if n == 0 || len(data) != 2+2*n {
		return dst, gsInvalidParameter
	}
	attrs := make([]uint16, n)
	for i := range attrs {
		attrs[i] = binary.LittleEndian.Uint16(data[2+2*i:])
		switch attrs[i] {
		case 1, 2, 7, 8:
		default:
			return dst, gsAttributeUnsupported
		}
	}
	first := 0
	if p.HasInstance && p.Instance > 0 {
		first = int(min(p.Instance, uint32(len(x.svc.cfg.tags)+1))) - 1
	}
	start := len(dst)
	for i, t := range x.svc.cfg.tags[first:] {
		at := len(dst)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(first+i+1))
		for _, a := range attrs {
			switch a {
			case 1:
				dst = binary.LittleEndian.AppendUint16(dst, uint16(len(t.name)))
				dst = append(dst, t.name...)
			case 2:
				dst = binary.LittleEndian.AppendUint16(dst, t.symbolType())
			case 7:
				dst = binary.LittleEndian.AppendUint16(dst, uint16(t.elementSize()))
			case 8:
				dst = binary.LittleEndian.AppendUint32(dst, uint32(t.size))
				dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
			}
		}
		if len(dst)-start > max-4 {
			if at == start {
				return dst[:start], gsReplyTooLarge
			}
			return dst[:at], gsPartialTransfer
		}
	}
	return dst, gsSuccess
}
