package snmp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sleepinggenius2/gosmi"
	"github.com/sleepinggenius2/gosmi/smi"
	"github.com/sleepinggenius2/gosmi/types"

	"github.com/icsnare/icsnare/profiles"
)

// gosmi keeps one global module table, so every use of it is serialised here, and the
// table is dropped whenever the search path changes: a module loaded for one profile or
// one sensor's mibpath never answers for another.
var (
	mibMu   sync.Mutex
	mibInit bool
	mibKey  string // the search path the loaded modules came from
)

// maxMIBDirs bounds the directories a recursive mibpath may add.
const maxMIBDirs = 4096

// mibDirs expands the configured mibpath: every directory and every directory below it,
// in order. Files are found by module name, with no extension or .mib, .my, .mi2 or .txt.
func (o *options) mibDirs() ([]string, error) {
	var dirs []string
	for _, dir := range o.MIBPath {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("mibpath: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("mibpath %s: not a directory", dir)
		}
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if len(dirs) >= maxMIBDirs {
					return fmt.Errorf("more than %d directories", maxMIBDirs)
				}
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("mibpath %s: %w", dir, err)
		}
	}
	return dirs, nil
}

// mibObject is what the agent needs to know about one MIB object type.
type mibObject struct {
	oid      []uint32
	name     string
	module   string
	tag      byte
	hint     string
	writable bool
	column   bool
	enum     []int64
	ranges   [][2]int64 // value ranges for integers, size ranges for strings
}

// mibResolver resolves symbols of one profile's MIB modules.
type mibResolver struct {
	profileMIBs fs.FS    // the profile's snmp/mibs directory, or nil
	profileName string   // where profileMIBs comes from, naming it in the search path
	userDirs    []string // the sensor's expanded mibpath
}

// setSearchPath points gosmi at the profile's MIBs, the user's directories and the base
// MIBs, in that order, dropping the loaded modules when that list changed. mibMu must be
// held.
func (r *mibResolver) setSearchPath() {
	var list []smi.NamedFS
	if r.profileMIBs != nil {
		if rd, ok := r.profileMIBs.(smi.FS); ok {
			list = append(list, gosmi.NamedFS("profile "+r.profileName, rd))
		}
	}
	for _, d := range r.userDirs {
		list = append(list, gosmi.NamedFS(d, os.DirFS(d).(smi.FS)))
	}
	base, err := fs.Sub(profiles.BaseMIBs, "mibs")
	if err == nil {
		if rd, ok := base.(smi.FS); ok {
			list = append(list, gosmi.NamedFS("base", rd))
		}
	}
	names := make([]string, len(list))
	for i, n := range list {
		names[i] = n.Name
	}
	key := strings.Join(names, "\x00")
	if mibInit && key != mibKey {
		gosmi.Exit()
		mibInit = false
	}
	if !mibInit {
		gosmi.Init()
		mibInit = true
	}
	mibKey = key
	gosmi.SetFS(list...)
}

// errNoSymbol is the lookup error of a symbol its (loaded) module lacks. Conpot warns
// about such a symbol and goes on, so the agent does the same.
var errNoSymbol = errors.New("unknown MIB symbol")

// lookup resolves symbol in module. A resolver that searches only the base MIB modules
// (no profile MIBs, no mibpath) answers from baseMIBObjects, resolved from those modules
// when the sensor was built, so a profile that names only base symbols parses no MIB at
// start-up; anything else goes to gosmi.
func (r *mibResolver) lookup(module, symbol string) (*mibObject, error) {
	if r.profileMIBs == nil && len(r.userDirs) == 0 {
		if o, ok := baseMIBObjects()[module+"::"+symbol]; ok {
			return o.clone(), nil
		}
	}
	return r.lookupSMI(module, symbol)
}

// clone returns a copy of o that shares no slice with it.
func (o *mibObject) clone() *mibObject {
	c := *o
	c.oid, c.enum, c.ranges = slices.Clone(o.oid), slices.Clone(o.enum), slices.Clone(o.ranges)
	return &c
}

// lookupSMI resolves symbol in module with gosmi.
func (r *mibResolver) lookupSMI(module, symbol string) (*mibObject, error) {
	mibMu.Lock()
	defer mibMu.Unlock()
	r.setSearchPath()
	mod, err := gosmi.GetModule(module)
	if err != nil {
		if _, lerr := gosmi.LoadModule(module); lerr != nil {
			return nil, fmt.Errorf("MIB module %s not found or not loadable (searched the profile's snmp/mibs, --mibpath and the base MIBs)", module)
		}
		if mod, err = gosmi.GetModule(module); err != nil {
			return nil, fmt.Errorf("MIB module %s: %v", module, err)
		}
	}
	node, err := mod.GetNode(symbol)
	if err != nil {
		return nil, fmt.Errorf("%w: MIB module %s has no symbol %s", errNoSymbol, module, symbol)
	}
	raw := node.GetRaw()
	o := &mibObject{name: symbol, module: module}
	for _, s := range node.Oid {
		o.oid = append(o.oid, uint32(s))
	}
	switch node.Kind {
	case types.NodeScalar:
	case types.NodeColumn:
		o.column = true
	default:
		return nil, fmt.Errorf("%s::%s is a %s, not a scalar or a table column", module, symbol, node.Kind)
	}
	switch node.Access {
	case types.AccessReadOnly:
	case types.AccessReadWrite:
		o.writable = true
	default:
		return nil, fmt.Errorf("%s::%s is %s, not readable", module, symbol, node.Access)
	}
	o.tag = syntaxTag(raw)
	if o.tag == 0 {
		return nil, fmt.Errorf("%s::%s has a syntax the agent cannot serve", module, symbol)
	}
	if node.Type != nil {
		o.hint = node.Type.Format
		if node.Type.Enum != nil {
			for _, v := range node.Type.Enum.Values {
				o.enum = append(o.enum, v.Value)
			}
			sort.Slice(o.enum, func(i, j int) bool { return o.enum[i] < o.enum[j] })
		}
		if o.tag != tagCounter64 {
			for _, rg := range node.Type.Ranges {
				if rg.MaxValue >= rg.MinValue {
					o.ranges = append(o.ranges, [2]int64{rg.MinValue, rg.MaxValue})
				}
			}
		}
	}
	return o, nil
}

// syntaxTag maps an object's SMI type to the BER tag of its values.
func syntaxTag(node *types.SmiNode) byte {
	ty := smi.GetNodeType(node)
	for i := 0; ty != nil && i < 32; i++ {
		mod := ""
		if m := smi.GetTypeModule(ty); m != nil {
			mod = string(m.Name)
		}
		switch ty.Name {
		case "IpAddress":
			return tagIPAddress
		case "Counter32", "Counter":
			return tagCounter32
		case "Gauge32", "Gauge":
			return tagGauge32
		case "TimeTicks":
			return tagTimeTicks
		case "Opaque":
			return tagOpaque
		case "Counter64":
			return tagCounter64
		case "Unsigned32":
			if mod == "SNMPv2-SMI" {
				return tagGauge32
			}
		}
		parent := smi.GetParentType(ty)
		if parent == nil || parent == ty {
			break
		}
		ty = parent
	}
	ty = smi.GetNodeType(node)
	if ty == nil {
		return 0
	}
	switch ty.BaseType {
	case types.BaseTypeInteger32, types.BaseTypeEnum, types.BaseTypeInteger64:
		return tagInteger
	case types.BaseTypeUnsigned32:
		return tagInteger // an INTEGER with a non-negative range
	case types.BaseTypeUnsigned64:
		if ty.Name == "" || ty.Name == "INTEGER" {
			return tagInteger // gosmi's base of a refined INTEGER such as (0..65535)
		}
		return tagCounter64
	case types.BaseTypeOctetString, types.BaseTypeBits:
		return tagOctetString
	case types.BaseTypeObjectIdentifier:
		return tagOID
	}
	return 0
}
