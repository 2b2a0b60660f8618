package clone

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

func init() { register(bacnetProber{}) }

// BACnet bounds.
const (
	bacMaxObjects  = 256 // objects of the object list cloned
	bacMaxDatagram = 1500
	bacMaxStray    = 32 // datagrams that answer nothing read while waiting for one answer
)

// bacDeviceProps are the device object's properties read, in the order bacnet.xml writes them.
var bacDeviceProps = []uint32{
	bacPropObjectName, bacPropVendorName, bacPropVendorIdentifier, bacPropModelName, bacPropFirmwareRevision,
	bacPropApplicationSoftware, bacPropDescription, bacPropLocation, bacPropSerialNumber, bacPropSystemStatus,
	bacPropMaxAPDU, bacPropSegmentation, bacPropMaxSegmentsAccepted, bacPropAPDUSegmentTimeout, bacPropAPDUTimeout,
	bacPropNumberOfAPDURetries, bacPropProtocolVersion, bacPropProtocolRevision, bacPropUTCOffset,
	bacPropDaylightSavings, bacPropProtocolServices, bacPropProtocolObjectTypes,
}

// bacObjectProps are the properties read of an object of type t; the first present-value-like
// one is the value (relinquish-default for the commandable outputs, which serve it until a
// client commands them).
func bacObjectProps(t uint16) []uint32 {
	p := []uint32{bacPropObjectName, bacPropDescription}
	switch t {
	case 0, 2:
		return append(p, bacPropPresentValue, bacPropUnits, bacPropCOVIncrement)
	case 1:
		return append(p, bacPropRelinquishDefault, bacPropUnits, bacPropCOVIncrement)
	case 3, 5:
		return append(p, bacPropPresentValue, bacPropActiveText, bacPropInactiveText)
	case 4:
		return append(p, bacPropRelinquishDefault, bacPropActiveText, bacPropInactiveText)
	case 13, 19:
		return append(p, bacPropPresentValue, bacPropNumberOfStates, bacPropStateText)
	case 14:
		return append(p, bacPropRelinquishDefault, bacPropNumberOfStates, bacPropStateText)
	case 40, 45, 48:
		return append(p, bacPropPresentValue)
	}
	return p
}

type bacnetProber struct{}

func (bacnetProber) Name() string     { return "bacnet" }
func (bacnetProber) DefaultPort() int { return 47808 }

type bacClient struct {
	p      *Probe
	conn   net.Conn
	invoke byte
	rpm    bool // ReadPropertyMultiple works
	live   []bacLive
	buf    [bacMaxDatagram]byte
}

// roundTrip sends one request (counted, retried once after silence) and returns the
// first datagram accept takes.
func (c *bacClient) roundTrip(ctx context.Context, req []byte, accept func(apdu []byte) (bool, error)) error {
	var last error = errSilent
	for try := 0; try < 2; try++ {
		if err := c.p.Request(ctx); err != nil {
			return err
		}
		c.conn.SetDeadline(c.p.Deadline())
		if _, err := c.conn.Write(req); err != nil {
			return fmt.Errorf("bacnet: %w", err)
		}
		for stray := 0; stray < bacMaxStray; stray++ {
			n, err := c.conn.Read(c.buf[:])
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return fmt.Errorf("bacnet: %w", err) // ICMP port unreachable
			}
			apdu, err := bacUnwrap(c.buf[:n])
			if err != nil {
				last = err
				continue
			}
			ok, err := accept(apdu)
			if ok {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return last
}

// confirmed sends a confirmed request built for the next invoke id and returns the answer.
func (c *bacClient) confirmed(ctx context.Context, build func(invoke byte) []byte) (bacAnswer, error) {
	c.invoke++
	inv := c.invoke
	var ans bacAnswer
	err := c.roundTrip(ctx, build(inv), func(a []byte) (bool, error) {
		x, ok, err := parseAnswer(a)
		if !ok || x.invoke != inv {
			return false, nil
		}
		ans = x
		return true, err
	})
	if err != nil {
		return ans, err
	}
	if ans.err != nil {
		return ans, ans.err
	}
	return ans, nil
}

// read reads one property (index < 0: all of it).
func (c *bacClient) read(ctx context.Context, obj bacObject, prop uint32, index int) ([]bacValue, error) {
	ans, err := c.confirmed(ctx, func(inv byte) []byte { return bacReadProperty(inv, obj, prop, index) })
	if err != nil {
		return nil, err
	}
	if ans.service != bacServiceReadProperty {
		return nil, errors.New("bacnet: an answer of another service")
	}
	return parseReadPropertyAck(ans.body, prop)
}

// readMany reads props of obj: with one ReadPropertyMultiple, or property by property
// where the device does not take it.
func (c *bacClient) readMany(ctx context.Context, obj bacObject, props []uint32) (map[uint32]bacResult, error) {
	if c.rpm {
		ans, err := c.confirmed(ctx, func(inv byte) []byte { return bacReadPropertyMultiple(inv, obj, props) })
		var be *bacError
		switch {
		case err == nil && ans.service == bacServiceReadPropMultiple:
			return parseRPMAck(ans.body, obj)
		case errors.As(err, &be) && be.kind != "error", errors.As(err, &be) && be.class == 5: // reject, abort; services
			c.rpm = false
			c.p.Report.Notes = append(c.p.Report.Notes, fmt.Sprintf("ReadPropertyMultiple refused (%v): read property by property", err))
		case err != nil && !errors.As(err, &be):
			return nil, err
		default:
			c.rpm = false
		}
	}
	out := map[uint32]bacResult{}
	for _, prop := range props {
		vals, err := c.read(ctx, obj, prop, -1)
		var be *bacError
		switch {
		case err == nil:
			out[prop] = bacResult{values: vals}
		case errors.As(err, &be):
			out[prop] = bacResult{err: be}
		default:
			return out, err
		}
	}
	return out, nil
}

func (bacnetProber) Probe(ctx context.Context, p *Probe) error {
	d := net.Dialer{Timeout: p.Opts.Timeout}
	conn, err := d.DialContext(ctx, "udp", p.Addr())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAbsent, err)
	}
	defer conn.Close()
	c := &bacClient{p: p, conn: conn, rpm: true}
	rep, tpl := p.Report, p.Template
	// Who-Is, unicast to the device: its I-Am names the device instance.
	var iam bacIAm
	err = c.roundTrip(ctx, bacWhoIs(), func(a []byte) (bool, error) {
		x, ok, err := parseIAm(a)
		if ok {
			iam = x
		}
		return ok, err
	})
	if errors.Is(err, ErrBudget) || ctx.Err() != nil {
		return err
	}
	dev := iam.device
	if err != nil {
		// Many devices broadcast their I-Am, which a unicast client never sees: ask the
		// device object by the wildcard instance, which is answered to the asker.
		rep.Refuse("Who-Is: %v", err)
		vals, rerr := c.read(ctx, bacObject{Type: bacObjectDevice, Inst: bacWildcardInstance}, bacPropObjectIdentifier, -1)
		if errors.Is(rerr, ErrBudget) || ctx.Err() != nil {
			return rerr
		}
		if rerr != nil || len(vals) != 1 || vals[0].tag != 12 || vals[0].obj.Type != bacObjectDevice {
			return fmt.Errorf("%w: Who-Is: %v; object-identifier of the wildcard device: %v", ErrAbsent, err, rerr)
		}
		dev = vals[0].obj
		rep.Find("device %d (object-identifier of the wildcard device; no unicast I-Am)", dev.Inst)
	} else {
		rep.Find("I-Am: device %d, max APDU %d, segmentation %d, vendor %d", dev.Inst, iam.maxAPDU, iam.seg, iam.vendr)
	}

	props := map[uint32][]bacValue{}
	res, err := c.readMany(ctx, dev, bacDeviceProps)
	if err != nil && len(res) == 0 {
		return err
	}
	for _, prop := range bacDeviceProps {
		r, ok := res[prop]
		switch {
		case !ok:
			rep.Skip("device %s: not read", bacPropNames[prop])
		case r.err != nil:
			rep.Refuse("device %s: %v", bacPropNames[prop], r.err)
		default:
			props[prop] = r.values
		}
	}
	if len(props) == 0 {
		return fmt.Errorf("%w: the device answers I-Am but no property of its device object", ErrAbsent)
	}
	objects, err := c.objectList(ctx, dev)
	if err != nil {
		if errors.Is(err, ErrBudget) || ctx.Err() != nil {
			return err
		}
		rep.Refuse("object-list: %v", err)
	}
	var b strings.Builder
	b.WriteString("    <device_info>\n")
	// The instance and the name identify the unit: each copy draws its own.
	inst := tpl.SeedNumber("bacnet", "device instance (I-Am, object-identifier)", uint64(dev.Inst), bacWildcardInstance-1)
	fmt.Fprintf(&b, "        <device_identifier databus=\"%s\"/>\n", inst)
	for _, prop := range bacDeviceProps {
		vals, ok := props[prop]
		if !ok || len(vals) == 0 {
			continue
		}
		name := bacPropNames[prop]
		v := vals[0]
		switch prop {
		case bacPropProtocolServices, bacPropProtocolObjectTypes:
			// Computed by the sensor from what it serves: reported, not copied.
			rep.Find("%s: %s (the clone serves its own)", name, v.text())
			continue
		case bacPropSegmentation:
			if int(v.u) < len(bacSegmentation) {
				fmt.Fprintf(&b, "        <%s>%s</%s>\n", name, bacSegmentation[v.u], name)
				rep.Find("%s: %s", name, bacSegmentation[v.u])
			}
			continue
		}
		if v.tag == 7 && !v.ok {
			rep.Skip("device %s: a character set the cloner does not decode (%s)", name, v.text())
			continue
		}
		text := v.text()
		rep.Find("device %s: %q", name, text)
		switch {
		case prop == bacPropObjectName && text != "":
			fmt.Fprintf(&b, "        <%s databus=\"%s\"/>\n", name, tpl.Seed(KindHostname, "bacnet", "device object-name", text))
		case prop == bacPropSerialNumber && text != "":
			fmt.Fprintf(&b, "        <%s databus=\"%s\"/>\n", name, tpl.Seed(KindSerial, "bacnet", "device serial-number", text))
		default:
			b.WriteString(bacElement(tpl, "        ", name, v))
		}
		switch prop {
		case bacPropVendorName:
			if tpl.Vendor == "" {
				tpl.Vendor = text
			}
		case bacPropModelName:
			if tpl.Unit == "" {
				tpl.Unit = text
			}
		case bacPropDescription:
			if tpl.Description == "" {
				tpl.Description = text
			}
		}
	}
	b.WriteString("    </device_info>\n")
	rep.Skip("database-revision, local date and time: each copy has its own")
	rep.Skip("the DeviceCommunicationControl/ReinitializeDevice password: the cloner sends neither")
	if len(objects) > 0 {
		b.WriteString("    <object_list>\n")
		seen := map[bacObject]bool{}
		for _, o := range objects {
			if o.Type == bacObjectDevice || seen[o] {
				continue
			}
			seen[o] = true
			x, err := c.object(ctx, o)
			if err != nil {
				if errors.Is(err, ErrBudget) || ctx.Err() != nil {
					rep.Skip("objects from %s: %v", o, err)
					break
				}
				rep.Refuse("%s: %v", o, err)
				continue
			}
			b.WriteString(x)
		}
		b.WriteString("    </object_list>\n")
	}
	x, err := c.liveValues(ctx, b.String())
	if err != nil {
		return err
	}
	rep.Skip("WriteProperty, COV, DeviceCommunicationControl and ReinitializeDevice are never tried")
	tpl.Section("bacnet", 47808, x)
	return nil
}

// bacLive is an analog value read once, read again after the interval.
type bacLive struct {
	obj   bacObject
	prop  uint32
	first bacValue
}

// liveValues reads every REAL present value (relinquish-default of outputs) again after
// the interval and puts its element in place of its placeholder in x: the value as read,
// or, when it moved, a process engine that wanders around the two values read (a swing of
// twice the change over an hour, a wander of half of it, a per-copy offset of up to the
// change), with the decimals the device showed.
func (c *bacClient) liveValues(ctx context.Context, x string) (string, error) {
	if len(c.live) == 0 {
		return x, nil
	}
	tpl, rep := c.p.Template, c.p.Report
	t := time.NewTimer(c.p.Opts.Interval)
	select {
	case <-ctx.Done():
		t.Stop()
		return "", ctx.Err()
	case <-t.C:
	}
	stopped := false
	for i, l := range c.live {
		pn := bacPropNames[l.prop]
		elem := bacElement(tpl, "                ", pn, l.first)
		if !stopped {
			vals, err := c.read(ctx, l.obj, l.prop, -1)
			switch {
			case errors.Is(err, ErrBudget) || ctx.Err() != nil:
				stopped = true
				rep.Notes = append(rep.Notes, fmt.Sprintf("second read stopped at %s: %v (values frozen)", l.obj, err))
			case err != nil || len(vals) != 1 || vals[0].tag != 4 || math.IsInf(vals[0].f, 0) || math.IsNaN(vals[0].f):
				rep.Notes = append(rep.Notes, fmt.Sprintf("second read of %s %s: %v (frozen)", l.obj, pn, err))
			case vals[0].f != l.first.f:
				a, b := l.first.f, vals[0].f
				dec := max(decimals(l.first.text()), decimals(vals[0].text()))
				d := math.Abs(b - a)
				param := fmt.Sprintf("[%g, %g, %g, 3600, %g, %d]", (a+b)/2, d, 2*d, d/2, dec)
				k := tpl.FunctionKey(fmt.Sprintf("bacnet_%s_%d", bacObjectTypes[l.obj.Type], l.obj.Inst), "process", param,
					fmt.Sprintf("%s %s moved between two reads", l.obj, pn))
				tpl.Engine("bacnet", l.obj.String()+" "+pn, "process", fmt.Sprintf("%s then %s in %.1fs", l.first.text(), vals[0].text(), c.p.Opts.Interval.Seconds()))
				elem = fmt.Sprintf("                <%s databus=\"%s\"/>\n", pn, k)
			}
		}
		x = strings.Replace(x, fmt.Sprintf("\x00live%d\x00", i), elem, 1)
	}
	return x, nil
}

// decimals counts the decimals of a number's text (at most 3).
func decimals(s string) int {
	if i := strings.IndexByte(s, '.'); i >= 0 && !strings.ContainsAny(s, "eE") {
		return min(len(s)-i-1, 3)
	}
	return 0
}

// objectList reads the device's object list: whole, else its size and entry by entry.
func (c *bacClient) objectList(ctx context.Context, dev bacObject) ([]bacObject, error) {
	rep := c.p.Report
	toObjs := func(vals []bacValue) []bacObject {
		var out []bacObject
		for _, v := range vals {
			if v.tag == 12 {
				out = append(out, v.obj)
			}
		}
		return out
	}
	vals, err := c.read(ctx, dev, bacPropObjectList, -1)
	if err == nil {
		objs := toObjs(vals)
		if len(objs) > bacMaxObjects {
			rep.Skip("objects after the first %d of %d", bacMaxObjects, len(objs))
			objs = objs[:bacMaxObjects]
		}
		rep.Find("object-list: %d objects", len(objs))
		return objs, nil
	}
	var be *bacError
	if !errors.As(err, &be) && !strings.Contains(err.Error(), "segmented") {
		return nil, err
	}
	// Too large for one unsegmented answer: the size, then entry by entry.
	vals, err = c.read(ctx, dev, bacPropObjectList, 0)
	if err != nil {
		return nil, err
	}
	if len(vals) != 1 || vals[0].tag != 2 {
		return nil, errors.New("object-list[0] is not a count")
	}
	n := int(min(vals[0].u, bacMaxObjects))
	if vals[0].u > bacMaxObjects {
		rep.Skip("objects after the first %d of %d", bacMaxObjects, vals[0].u)
	}
	var objs []bacObject
	for i := 1; i <= n; i++ {
		vals, err := c.read(ctx, dev, bacPropObjectList, i)
		if err != nil {
			if errors.Is(err, ErrBudget) || ctx.Err() != nil {
				return objs, err
			}
			rep.Refuse("object-list[%d]: %v", i, err)
			continue
		}
		objs = append(objs, toObjs(vals)...)
	}
	rep.Find("object-list: %d objects, read entry by entry", len(objs))
	return objs, nil
}

// object reads one object and returns its <object> element.
func (c *bacClient) object(ctx context.Context, o bacObject) (string, error) {
	tpl, rep := c.p.Template, c.p.Report
	props := bacObjectProps(o.Type)
	res, err := c.readMany(ctx, o, props)
	if err != nil && len(res) == 0 {
		return "", err
	}
	typ, ok := bacObjectTypes[o.Type]
	if !ok {
		rep.Skip("%s: an object type the sensor does not model", o)
		return "", nil
	}
	name := ""
	if r := res[bacPropObjectName]; r.err == nil && len(r.values) == 1 && r.values[0].tag == 7 && r.values[0].ok {
		name = r.values[0].s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "        <object name=\"%s\">\n            <properties>\n", XA(name))
	fmt.Fprintf(&b, "                <object_identifier>%d</object_identifier>\n                <object_type>%s</object_type>\n", o.Inst, typ)
	if name == "" || !IsPrintable(name) || tpl.HasKey(name) || strings.HasPrefix(name, `"`) || strings.HasPrefix(name, `'`) {
		if name != "" {
			fmt.Fprintf(&b, "                <object_name databus=\"%s\"/>\n", tpl.Literal("bacnet_object_name", name))
		}
	}
	for _, prop := range props[1:] {
		r, ok := res[prop]
		if !ok || r.err != nil || len(r.values) == 0 {
			continue
		}
		pn := bacPropNames[prop]
		if prop == bacPropStateText {
			var texts []string
			good := true
			for _, v := range r.values {
				if v.tag != 7 || !v.ok || v.s == "" || strings.Contains(v.s, ";") {
					good = false
				}
				texts = append(texts, v.s)
			}
			if n := res[bacPropNumberOfStates]; n.err == nil && len(n.values) == 1 && n.values[0].u != uint64(len(texts)) {
				good = false // the profile's counts must agree
			}
			if !good || len(texts) == 0 {
				rep.Skip("%s state-text: texts the profile cannot list", o)
				continue
			}
			b.WriteString(bacElement(tpl, "                ", pn, bacValue{tag: 7, ok: true, s: strings.Join(texts, ";")}))
			continue
		}
		v := r.values[0]
		if len(r.values) != 1 || v.tag == 255 || v.tag == 7 && !v.ok || v.tag == 0 || v.tag == 4 && (math.IsInf(v.f, 0) || math.IsNaN(v.f)) {
			rep.Skip("%s %s: a value the profile cannot hold", o, pn)
			continue
		}
		if v.tag == 4 && (prop == bacPropPresentValue || prop == bacPropRelinquishDefault) && len(c.live) < bacMaxObjects {
			// A REAL value: read again later; it becomes an engine if it moved.
			fmt.Fprintf(&b, "\x00live%d\x00", len(c.live))
			c.live = append(c.live, bacLive{obj: o, prop: prop, first: v})
			continue
		}
		b.WriteString(bacElement(tpl, "                ", pn, v))
	}
	b.WriteString("            </properties>\n        </object>\n")
	return b.String(), nil
}

// bacElement writes one property element: literal text, or a databus literal for text XML
// or the profile's text rules would change (a key's name, quotes, outer white space).
func bacElement(tpl *Template, indent, name string, v bacValue) string {
	text := v.text()
	if v.tag == 7 && (!IsPrintable(text) || tpl.HasKey(text) || len(text) >= 2 && (text[0] == '"' || text[0] == '\'') && text[len(text)-1] == text[0] || len(text) > 255) {
		if len(text) > 255 {
			text = text[:255]
		}
		return fmt.Sprintf("%s<%s databus=\"%s\"/>\n", indent, name, tpl.Literal("bacnet_"+name, text))
	}
	return fmt.Sprintf("%s<%s>%s</%s>\n", indent, name, X(text), name)
}

// SeedNumber turns a number that identifies the unit (a BACnet device instance) into a
// per-host key drawing a number of as many decimal digits, at most hi.
func (t *Template) SeedNumber(proto, field string, v, hi uint64) string {
	s := strconv.FormatUint(v, 10)
	lo, top := uint64(0), uint64(9)
	for i := 1; i < len(s); i++ {
		top = top*10 + 9
	}
	if len(s) > 1 {
		lo = (top + 1) / 10
	}
	top = min(top, hi)
	return t.SeedRange(proto, field, s, min(lo, top), top)
}

// SeedRange turns a number that identifies the unit into a per-host key drawing a number
// in [lo, hi] (a serial keeps its vendor's top digits that way); original is the number
// as the device shows it.
func (t *Template) SeedRange(proto, field, original string, lo, hi uint64) string {
	if k, ok := t.ids[original]; ok {
		t.seeded = append(t.seeded, SeededField{Protocol: proto, Field: field, Kind: KindNumber, Key: k, Original: original, Expression: t.keys[t.keyIndex[k]].expr})
		return k
	}
	expr := fmt.Sprintf("random.randint(%d, %d)", lo, hi)
	k := t.Key("Number_"+proto, expr, fmt.Sprintf("per host: the %s, drawn from %d-%d", field, lo, hi))
	t.ids[original] = k
	t.seeded = append(t.seeded, SeededField{Protocol: proto, Field: field, Kind: KindNumber, Key: k, Original: original, Expression: expr})
	return k
}
