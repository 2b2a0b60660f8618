package snmp

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/sleepinggenius2/gosmi"
	"github.com/sleepinggenius2/gosmi/types"

	"github.com/icsnare/icsnare/profiles"
)

// Raw objects: <symbol oid="1.3.6.1.4.1.8072.1.2.3.0" type="OctetString"><value>…</value></symbol>
// serves an object instance that no loaded MIB module names (an icsnare extension, written by
// `icsnare clone` for a device's private MIB). The type is one of rawTypes.

// rawTypes maps a raw symbol's type attribute to the BER tag of its values. HexString is an
// OCTET STRING whose value is given in hex (binary octets).
var rawTypes = map[string]byte{
	"Integer": tagInteger, "OctetString": tagOctetString, "HexString": tagOctetString,
	"ObjectIdentifier": tagOID, "IpAddress": tagIPAddress, "Counter32": tagCounter32,
	"Gauge32": tagGauge32, "TimeTicks": tagTimeTicks, "Opaque": tagOpaque, "Counter64": tagCounter64,
}

// RawTypes lists the type names a raw <symbol oid=… type=…> takes, sorted.
func RawTypes() []string {
	out := make([]string, 0, len(rawTypes))
	for k := range rawTypes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// rawSymbolObject builds the object of a <symbol oid=… type=…>.
func rawSymbolObject(sec *profiles.Section, module string, s *profiles.Node) (*object, error) {
	sec.CheckChildren(s, "value", "engine")
	text, _ := s.Attr("oid")
	// "….@addr": the instance ends in the host's own address (LLDP's management address).
	fixed, hostAddr := strings.CutSuffix(strings.TrimSpace(text), ".@addr")
	oid, err := parseOIDString(fixed)
	if err != nil {
		return nil, s.Errorf("oid %q: %v", text, err)
	}
	if len(oid) < 2 || len(oid) > maxOIDLen {
		return nil, s.Errorf("oid %q: between 2 and %d sub-identifiers", text, maxOIDLen)
	}
	typ, _ := s.Attr("type")
	tag, ok := rawTypes[strings.TrimSpace(typ)]
	if !ok {
		return nil, s.Errorf("type %q: one of %s", typ, strings.Join(RawTypes(), ", "))
	}
	o := &object{oid: oid, typeLen: len(oid) - 1, name: oidString(oid), tag: tag, hostAddr: hostAddr}
	if hostAddr {
		o.name += ".@addr"
	}
	if strings.TrimSpace(typ) == "HexString" {
		o.hint = "1x:"
	}
	valNode := s.Child("value")
	val := ""
	if valNode != nil {
		val = valNode.TextTrim()
	}
	o.key = "snmp." + module + "::" + o.name
	schema := sec.Profile.Schema
	var spec profiles.EngineSpec
	e := s.Child("engine")
	if e != nil {
		etyp, _ := e.Attr("type")
		if spec, err = profiles.ParseEngine(etyp, e.TextTrim()); err != nil {
			// As for named symbols (tree.go): warn and serve the <value>.
			sec.Warnf(e, "%v; serving <value> without an engine", err)
			e = nil
		}
	}
	if e != nil {
		o.engine = &spec
		switch {
		case schema.Has(val):
			o.initKey = val
		case val != "":
			if o.literal, err = literalValue(o, val); err != nil {
				return nil, valNode.Errorf("%v", err)
			}
		case tag == tagOctetString || tag == tagOpaque || tag == tagOID || tag == tagIPAddress:
			o.literal = ""
		default:
			o.literal = int64(0)
		}
		return o, nil
	}
	if valNode == nil {
		return nil, s.Errorf("symbol %s has neither <value> nor <engine>", o.name)
	}
	if schema.Has(val) {
		o.key = val
		return o, nil
	}
	if o.literal, err = literalValue(o, val); err != nil {
		return nil, valNode.Errorf("%q is neither a databus key nor a valid %s value: %v", val, tagName(tag), err)
	}
	return o, nil
}

// OIDName is what the loaded MIB modules say about one object instance.
type OIDName struct {
	Module, Symbol string
	Instance       string // "0" for a scalar, the index for a table column
	// Type is the raw type name (see RawTypes) of the object's syntax; HexString when the
	// object's display hint shows octets in hex.
	Type string
}

// Namer names object instances from the base MIB modules and extra MIB directories, as
// the agent resolves a profile's symbols.
type Namer struct {
	res     *mibResolver
	modules []string
}

// NewNamer loads the base MIB modules and every module file found in dirs (searched
// recursively, as --mibpath is).
func NewNamer(dirs []string) (*Namer, error) {
	o := &options{MIBPath: dirs}
	expanded, err := o.mibDirs()
	if err != nil {
		return nil, err
	}
	n := &Namer{res: &mibResolver{userDirs: expanded}}
	if ents, err := fs.ReadDir(profiles.BaseMIBs, "mibs"); err == nil {
		for _, e := range ents {
			n.modules = append(n.modules, strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
		}
	}
	for _, d := range expanded {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("mib directory %s: %w", d, err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				n.modules = append(n.modules, strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
			}
		}
	}
	mibMu.Lock()
	defer mibMu.Unlock()
	n.res.setSearchPath()
	for _, m := range n.modules {
		if _, err := gosmi.GetModule(m); err != nil {
			gosmi.LoadModule(m) // a file that is no MIB module is no error: it names nothing
		}
	}
	return n, nil
}

// Name names oid: the scalar or column it is an instance of, if a loaded module knows one
// the agent can serve.
func (n *Namer) Name(oid []uint32) (OIDName, bool) {
	mibMu.Lock()
	n.res.setSearchPath()
	for _, m := range n.modules {
		if _, err := gosmi.GetModule(m); err != nil {
			gosmi.LoadModule(m)
		}
	}
	toid := make(types.Oid, len(oid))
	for i, s := range oid {
		toid[i] = types.SmiSubId(s)
	}
	node, err := gosmi.GetNodeByOID(toid)
	mibMu.Unlock()
	if err != nil || len(node.Oid) >= len(oid) || node.Name == "" {
		return OIDName{}, false
	}
	for i, s := range node.Oid {
		if uint32(s) != oid[i] {
			return OIDName{}, false
		}
	}
	if node.Kind != types.NodeScalar && node.Kind != types.NodeColumn {
		return OIDName{}, false
	}
	module := node.GetModule().Name
	mo, err := n.res.lookup(module, node.Name)
	if err != nil {
		return OIDName{}, false
	}
	inst := oid[len(node.Oid):]
	if !mo.column && (len(inst) != 1 || inst[0] != 0) {
		return OIDName{}, false
	}
	typ := ""
	for k, v := range rawTypes {
		if v == mo.tag && k != "HexString" {
			typ = k
		}
	}
	if mo.tag == tagOctetString && isHexHint(mo.hint) {
		typ = "HexString"
	}
	return OIDName{Module: module, Symbol: node.Name, Instance: oidString(inst), Type: typ}, true
}
