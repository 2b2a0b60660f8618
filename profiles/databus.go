package profiles

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// KeySpec is one databus key as the template defines it.
type KeySpec struct {
	Name  string
	Type  string // "value" or "function"
	Text  string // the expression, or the function's dotted name
	Param string // a function's constructor arguments (an expression), may be empty
	File  string
	Line  int
	// Seed names the random stream the key draws from (icsnare's seed attribute): keys with
	// the same seed draw the same numbers on one host, so a firmware version chosen in one
	// key and spelled out in another (an SNMP sysDescr) agree. Empty: the key's own name.
	Seed string
	// Constant marks a value every real unit of the persona shows alike (a firmware string,
	// a copyright line; icsnare's constant="true"): the persona lint lets it repeat across
	// hosts.
	Constant bool

	expr  *Expr // type "value"
	param *Expr // type "function" with param
	ctor  FunctionCtor
	// make builds a host's value of a compiled function (FunctionCompiler) whose param
	// does not depend on the host; nil otherwise.
	make func(EngineEnv) (any, error)

	// shared is the value of a host-independent expression, evaluated once at load and
	// shared by every host (copy on write: databus writers replace, never modify, values).
	shared    any
	hasShared bool
}

// Schema is a profile's databus definition: what every host of that profile starts with.
type Schema struct {
	keys  []KeySpec
	index map[string]int
	// overlaidBy maps a key to the function key whose value (an Overlay) drives it.
	overlaidBy map[string]string
}

// Keys returns the defined key names in template order.
func (s *Schema) Keys() []string {
	out := make([]string, len(s.keys))
	for i, k := range s.keys {
		out[i] = k.Name
	}
	return out
}

// Has reports whether key is defined.
func (s *Schema) Has(key string) bool { _, ok := s.index[key]; return ok }

// Key is a databus key resolved against a schema once (Schema.Key), so that a request path
// reading it does no map lookup by name. It reads from any databus: one made from another
// schema looks the name up as usual.
type Key struct {
	name   string
	schema *Schema
	i      int // the key's position in schema; -1: not one of its keys
}

// Key resolves name against the schema.
func (s *Schema) Key(name string) Key {
	k := Key{name: name, schema: s, i: -1}
	if s != nil {
		if i, ok := s.index[name]; ok {
			k.i = i
		}
	}
	return k
}

// Name returns the key's name.
func (k Key) Name() string { return k.name }

// nameKey is a Key that was not resolved (the string APIs' argument).
func nameKey(name string) Key { return Key{name: name, i: -1} }

// Spec returns the definition of key.
func (s *Schema) Spec(key string) (KeySpec, bool) {
	i, ok := s.index[key]
	if !ok {
		return KeySpec{}, false
	}
	return s.keys[i], true
}

// maxKeys bounds the keys of one databus (a host stores their positions in 16 bits).
const maxKeys = 1 << 16

// checkSeed is the seed used to evaluate every key once at load, so errors surface at start.
const checkSeed = 0x1c5a4e

func parseDatabus(p *Profile, n *Node) (*Schema, error) {
	s := &Schema{index: map[string]int{}}
	for _, m := range n.Children {
		if m.Name != "key_value_mappings" {
			p.warnf("%s:%d: <%s>: unknown element inside <databus>, ignored", m.File, m.Line, m.Name)
			continue
		}
		for _, k := range m.Children {
			if k.Name != "key" {
				p.warnf("%s:%d: <%s>: unknown element inside <key_value_mappings>, ignored", k.File, k.Line, k.Name)
				continue
			}
			spec, err := parseKey(k)
			if err != nil {
				return nil, err
			}
			spec.compile()
			if _, dup := s.index[spec.Name]; dup {
				return nil, k.Errorf("duplicate databus key %q", spec.Name)
			}
			if len(s.keys) == maxKeys {
				return nil, k.Errorf("more than %d databus keys", maxKeys)
			}
			s.index[spec.Name] = len(s.keys)
			s.keys = append(s.keys, spec)
		}
	}
	// Evaluate everything once so a bad expression (or one too large) stops the sensor at
	// start, not at first contact; values the same for every host are kept and shared.
	env := EngineEnv{Seed: checkSeed, Addr: netip.MustParseAddr("192.0.2.1"), Start: time.Now()}
	var total int64
	for i := range s.keys {
		k := &s.keys[i]
		v, err := k.instantiate(env)
		if err != nil {
			return nil, &Error{File: k.File, Line: k.Line, Element: "key name=\"" + k.Name + "\"", Err: err}
		}
		b, n := valueSize(v)
		if total += b + n*elemBytes; total > MaxProfileBytes {
			return nil, &Error{File: k.File, Line: k.Line, Element: "key name=\"" + k.Name + "\"",
				Err: tooBig("the databus values reach %d bytes with this key; the limit per profile is %d", total, MaxProfileBytes)}
		}
		if k.expr != nil && k.expr.HostIndependent() {
			k.shared, k.hasShared = compactList(v), true
		}
		if o, ok := v.(Overlay); ok {
			for _, name := range o.Overlays() {
				if s.overlaidBy == nil {
					s.overlaidBy = map[string]string{}
				}
				if _, taken := s.overlaidBy[name]; !taken && name != k.Name {
					s.overlaidBy[name] = k.Name
				}
			}
		}
	}
	// Function keys are never driven by an overlay, so overlays cannot chain or loop.
	for name := range s.overlaidBy {
		if i, ok := s.index[name]; ok && s.keys[i].Type == "function" {
			delete(s.overlaidBy, name)
		}
	}
	return s, nil
}

func parseKey(k *Node) (KeySpec, error) {
	name, ok := k.Attr("name")
	if !ok || strings.TrimSpace(name) == "" {
		return KeySpec{}, k.Errorf("key without a name attribute")
	}
	v := k.Child("value")
	if v == nil {
		return KeySpec{}, k.Errorf("key %q has no <value>", name)
	}
	spec := KeySpec{Name: name, Text: v.TextTrim(), File: v.File, Line: v.Line}

	spec.Type, _ = v.Attr("type")
	spec.Param, _ = v.Attr("param")
	spec.Seed, _ = v.Attr("seed")
	spec.Seed = strings.TrimSpace(spec.Seed)
	if c, ok := v.Attr("constant"); ok {
		b, err := strconv.ParseBool(strings.TrimSpace(c))
		if err != nil {
			return KeySpec{}, v.Errorf("key %q: constant %q is not true or false", name, c)
		}
		spec.Constant = b
	}
	switch spec.Type {
	case "value":
		if spec.Text == "" {
			return KeySpec{}, v.Errorf("key %q: empty value expression", name)
		}
		e, err := CompileExpr(name, spec.Text)
		if err != nil {
			return KeySpec{}, v.Errorf("key %q: %v", name, err)
		}
		spec.expr = e
	case "function":
		ctor, ok := lookupFunction(spec.Text)
		if !ok && strings.HasPrefix(spec.Text, "conpot.") {
			// Conpot imports the class and stops when it cannot; so does icsnare, naming it.
			return KeySpec{}, v.Errorf("key %q: Conpot's databus function %q is not implemented by this icsnare (it has %s)",
				name, spec.Text, strings.Join(conpotFunctionNames(), ", "))
		}
		if !ok {
			return KeySpec{}, v.Errorf("key %q: unknown function %q (known: %s)", name, spec.Text, strings.Join(FunctionNames(), ", "))
		}
		spec.ctor = ctor
		if strings.TrimSpace(spec.Param) != "" {
			e, err := CompileExpr(name+" param", spec.Param)
			if err != nil {
				return KeySpec{}, v.Errorf("key %q: param: %v", name, err)
			}
			spec.param = e
		}
	default:
		return KeySpec{}, v.Errorf("key %q: value type %q is neither \"value\" nor \"function\"", name, spec.Type)
	}
	return spec, nil
}

// compile parses the param of a compiled function (FunctionCompiler) once, when it does
// not depend on the host; an error is left for instantiate, which names file and line.
func (k *KeySpec) compile() {
	if k.ctor == nil || (k.param != nil && !k.param.HostIndependent()) {
		return
	}
	compile, ok := lookupCompiler(k.Text)
	if !ok {
		return
	}
	var params []any
	if k.param != nil {
		pv, err := k.param.Eval(checkSeed)
		if err != nil {
			return
		}
		params = paramList(pv)
	}
	if mk, err := compile(params); err == nil {
		k.make = mk
	}
}

// Sample returns key's value as the load-time check evaluates it (a dynamic value read
// once). Protocols size things by it, e.g. a Modbus block by the length of its list.
func (s *Schema) Sample(key string) (any, error) {
	spec, ok := s.Spec(key)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoKey, key)
	}
	v, err := spec.instantiate(EngineEnv{Seed: checkSeed, Addr: netip.MustParseAddr("192.0.2.1"), Start: time.Now()})
	if err != nil {
		return nil, err
	}
	return current(v), nil
}

// conpotFunctionNames lists the registered functions under Conpot's dotted names.
func conpotFunctionNames() []string {
	var out []string
	for _, n := range FunctionNames() {
		if strings.HasPrefix(n, "conpot.") {
			out = append(out, n)
		}
	}
	return out
}

// keySeed derives the seed of one key on one host, so values do not depend on the order in
// which keys are first read.
func keySeed(host uint64, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return host ^ h.Sum64()*0x9e3779b97f4a7c15
}

func (k KeySpec) instantiate(env EngineEnv) (any, error) {
	if k.hasShared {
		return k.shared, nil
	}
	label := k.Name
	if k.Seed != "" {
		label = "seed:" + k.Seed
	}
	seed := keySeed(env.Seed, label)
	if k.expr != nil {
		return k.expr.Eval(seed)
	}
	if k.make != nil {
		env.HostSeed, env.Seed = env.Seed, seed
		return k.make(env)
	}
	var params []any
	if k.param != nil {
		pv, err := k.param.Eval(seed)
		if err != nil {
			return nil, err
		}
		params = paramList(pv)
	}
	env.HostSeed, env.Seed = env.Seed, seed
	return k.ctor(env, params)
}

// paramList is a function's evaluated param as a list of arguments.
func paramList(pv any) []any {
	if l, ok := pv.([]any); ok {
		return l
	}
	return []any{pv}
}

// Dynamic is a value computed on every read (an uptime, a counter, a random register).
type Dynamic interface {
	Value(now time.Time) any
}

// Overlay is a function value that drives other databus keys with live values, as Conpot's
// UsageSimulator replaces a meter's energy and power registers with getters. The first
// read of a driven key (one not written) asks the overlay for its value, which is then
// stored like any other (a Dynamic is evaluated on every read).
type Overlay interface {
	// Overlays lists the keys the value drives; it is asked once, when the profile loads.
	Overlays() []string
	// Overlay returns the value of key. base evaluates a key's template definition on
	// this host (never an overlay), for the starting values the overlay builds on.
	Overlay(key string, base func(key string) (any, error)) (any, bool)
}

// ErrNoKey is returned for a key neither the template nor any write defined.
var ErrNoKey = errors.New("no such databus key")

// Databus is one host's key/value store. Reads and writes are safe for concurrent use; every
// protocol of the host sees the same values. Values are materialised on first read.
//
// Set and Update are writes (what attackers change); the write hook, when set, sees each
// one so the sensor can keep it across eviction and restarts. Restore puts a kept value
// back, and Init is for a protocol's own start-up values, which never replace a write.
type Databus struct {
	schema *Schema
	env    EngineEnv
	hook   WriteHook

	mu sync.RWMutex // orders the writers; guards written and extra
	// vals holds the values materialised so far of the schema's keys (a host touched by
	// one protocol stores a few keys, not a map sized for all of them). A published set is
	// never changed, a store publishes a new one: reads of schema keys take no lock, so
	// the readers of one busy host do not all write the lock's word on every request.
	vals atomic.Pointer[schemaVals]
	// written is a bit per schema key set by Set, Update or Restore; nil until the first.
	written []uint64
	// extra holds keys outside the schema (a protocol's Init values, writes of new keys),
	// sorted by key; nil until one.
	extra []extraValue
}

// schemaVals are values of schema keys: idx holds their positions in the schema's key
// order, sorted, and vals their values.
type schemaVals struct {
	idx  []uint16
	vals []any
}

// get returns the value at schema position i.
func (s *schemaVals) get(i int) (any, bool) {
	if s == nil {
		return nil, false
	}
	j, found := slices.BinarySearch(s.idx, uint16(i))
	if !found {
		return nil, false
	}
	return s.vals[j], true
}

// with returns a copy of s with the value at schema position i set to v (s may be nil).
// Replacing a value shares s's positions; adding one copies both, exactly sized.
func (s *schemaVals) with(i uint16, v any) *schemaVals {
	var idx []uint16
	var vals []any
	if s != nil {
		idx, vals = s.idx, s.vals
	}
	j, found := slices.BinarySearch(idx, i)
	if found {
		n := &schemaVals{idx: idx, vals: slices.Clone(vals)}
		n.vals[j] = v
		return n
	}
	n := &schemaVals{idx: make([]uint16, len(idx)+1), vals: make([]any, len(vals)+1)}
	copy(n.idx, idx[:j])
	copy(n.vals, vals[:j])
	n.idx[j], n.vals[j] = i, v
	copy(n.idx[j+1:], idx[j:])
	copy(n.vals[j+1:], vals[j:])
	return n
}

// extraValue is a value of a key the schema does not define.
type extraValue struct {
	key     string
	v       any
	written bool
}

// extraLocked returns the position of key in d.extra, or where it would go.
func (d *Databus) extraLocked(key string) (int, bool) {
	return slices.BinarySearchFunc(d.extra, key, func(e extraValue, k string) int { return strings.Compare(e.key, k) })
}

// extraEntryLocked returns key's entry in d.extra, adding it when missing.
func (d *Databus) extraEntryLocked(key string) *extraValue {
	j, ok := d.extraLocked(key)
	if !ok {
		d.extra = slices.Insert(d.extra, j, extraValue{key: key})
	}
	return &d.extra[j]
}

// loadLocked returns the stored value of key.
func (d *Databus) loadLocked(key string) (any, bool) {
	if i, ok := d.schema.index[key]; ok {
		return d.vals.Load().get(i)
	}
	return d.extraValueLocked(key)
}

// load returns the stored value of key, taking the read lock only for a key outside the
// schema; a key resolved against this databus's schema is not looked up by name.
func (d *Databus) load(k Key) (any, bool) {
	if k.schema == d.schema && k.i >= 0 {
		return d.vals.Load().get(k.i)
	}
	key := k.name
	if i, ok := d.schema.index[key]; ok {
		return d.vals.Load().get(i)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.extraValueLocked(key)
}

// extraValueLocked returns the value of a key outside the schema.
func (d *Databus) extraValueLocked(key string) (any, bool) {
	if j, ok := d.extraLocked(key); ok {
		return d.extra[j].v, true
	}
	return nil, false
}

// storeLocked stores v under key, keeping whether it was written.
func (d *Databus) storeLocked(key string, v any) {
	if i, ok := d.schema.index[key]; ok {
		d.vals.Store(d.vals.Load().with(uint16(i), v))
		return
	}
	d.extraEntryLocked(key).v = v
}

// writtenLocked reports whether key was written or restored.
func (d *Databus) writtenLocked(key string) bool {
	if i, ok := d.schema.index[key]; ok {
		return i/64 < len(d.written) && d.written[i/64]&(1<<(i%64)) != 0
	}
	j, ok := d.extraLocked(key)
	return ok && d.extra[j].written
}

// WriteHook is told about every Set and Update, with the value now stored. It runs under
// the databus lock, so writes of one key reach it in order; it must not block (queue the
// value and return).
type WriteHook func(key string, v any)

// SetWriteHook sets the hook for later writes. Call it before the databus is shared.
func (d *Databus) SetWriteHook(h WriteHook) { d.hook = h }

// Restore stores a kept value as written, without telling the hook.
func (d *Databus) Restore(key string, v any) {
	d.mu.Lock()
	d.storeLocked(key, compactList(v))
	d.markLocked(key)
	d.mu.Unlock()
}

// Init stores a protocol's start-up value for key (an SNMP literal or engine) unless key
// was written or restored: an attacker's SET survives the protocol's first contact after
// the host was regenerated.
func (d *Databus) Init(key string, v any) {
	d.mu.Lock()
	if !d.writtenLocked(key) {
		d.storeLocked(key, v)
	}
	d.mu.Unlock()
}

// Written reports whether key was written or restored.
func (d *Databus) Written(key string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.writtenLocked(key)
}

func (d *Databus) markLocked(key string) {
	if i, ok := d.schema.index[key]; ok {
		if n := i/64 + 1; len(d.written) < n {
			d.written = append(d.written, make([]uint64, n-len(d.written))...)
		}
		d.written[i/64] |= 1 << (i % 64)
		return
	}
	d.extraEntryLocked(key).written = true
}

// wroteLocked records a write and hands it to the hook.
func (d *Databus) wroteLocked(key string, v any) {
	d.markLocked(key)
	if d.hook != nil {
		d.hook(key, v)
	}
}

// NewDatabus returns a host's databus for this schema.
func (s *Schema) NewDatabus(env EngineEnv) *Databus {
	if env.Start.IsZero() {
		env.Start = time.Now()
	}
	return &Databus{schema: s, env: env}
}

// Env returns the host identity the databus was created with.
func (d *Databus) Env() EngineEnv { return d.env }

// raw returns the stored value (possibly a Dynamic), materialising it if needed.
func (d *Databus) raw(k Key) (any, error) {
	if v, ok := d.load(k); ok {
		return v, nil
	}
	key := k.name
	nv, err := d.overlay(key)
	if err != nil {
		return nil, err
	}
	if nv == nil {
		if nv, err = d.base(key); err != nil {
			return nil, err
		}
	}
	nv = compactList(nv) // a list of numbers costs a byte or two per element, not an interface
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.loadLocked(key); ok { // another reader got there first
		return v, nil
	}
	d.storeLocked(key, nv)
	return nv, nil
}

// base evaluates key's template definition on this host.
func (d *Databus) base(key string) (any, error) {
	spec, ok := d.schema.Spec(key)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoKey, key)
	}
	v, err := spec.instantiate(d.env)
	if err != nil {
		return nil, fmt.Errorf("databus key %q: %w", key, err)
	}
	return v, nil
}

// overlay returns the value an Overlay gives key, or nil when none drives it.
func (d *Databus) overlay(key string) (any, error) {
	owner, ok := d.schema.overlaidBy[key]
	if !ok {
		return nil, nil
	}
	ov, err := d.raw(nameKey(owner))
	if err != nil {
		return nil, err
	}
	o, ok := ov.(Overlay)
	if !ok { // the owner was written over: the key keeps its template value
		return nil, nil
	}
	v, ok := o.Overlay(key, d.base)
	if !ok {
		return nil, nil
	}
	return v, nil
}

// Get returns the current value of key. Lists and maps are shared: treat them as read-only
// and change them with Update.
func (d *Databus) Get(key string) (any, error) { return d.GetKey(nameKey(key)) }

// Lookup is Get for a key that may be undefined: ok is false, with no error and nothing
// allocated, when neither the template nor a write defined key (Get's ErrNoKey).
func (d *Databus) Lookup(key string) (v any, ok bool, err error) {
	k := nameKey(key)
	if v, stored := d.load(k); stored {
		return current(v), true, nil
	}
	if _, inSchema := d.schema.index[key]; !inSchema {
		if _, overlaid := d.schema.overlaidBy[key]; !overlaid {
			return nil, false, nil
		}
	}
	v, err = d.GetKey(k)
	return v, err == nil, err
}

// GetKey is Get of a resolved key.
func (d *Databus) GetKey(k Key) (any, error) {
	v, err := d.raw(k)
	if err != nil {
		return nil, err
	}
	return current(v), nil
}

// current is what Get returns for a stored value: a dynamic one evaluated now, a compact
// list expanded.
func current(v any) any {
	if dyn, ok := v.(Dynamic); ok {
		return dyn.Value(time.Now())
	}
	return expand(v)
}

// GetIntList returns key's value when the databus keeps it as a compact list of integers
// (a list of numbers, written or not), without copying, or when it is a live list of
// integers (a processlist of whole numbers), computed now without an interface per
// element; ok is false for any other value, which Get returns. Treat the list as read-only.
func (d *Databus) GetIntList(key string) (l *IntList, ok bool, err error) {
	return d.GetIntListKey(nameKey(key))
}

// GetIntListKey is GetIntList of a resolved key.
func (d *Databus) GetIntListKey(k Key) (l *IntList, ok bool, err error) {
	v, err := d.raw(k)
	if err != nil {
		return nil, false, err
	}
	switch x := v.(type) {
	case *IntList:
		return x, true, nil
	case intLister:
		l, ok = x.IntList(time.Now())
		return l, ok, nil
	}
	return nil, false, nil
}

// intLister is a dynamic value that can give its value at now as an IntList.
type intLister interface {
	IntList(now time.Time) (*IntList, bool)
}

// Set replaces the value of key (a dynamic value becomes the static value written).
func (d *Databus) Set(key string, v any) {
	d.mu.Lock()
	d.storeLocked(key, compactList(v)) // a written list of numbers stays compact
	d.wroteLocked(key, v)
	d.mu.Unlock()
}

// Update atomically replaces key's value with fn(current). fn must not modify current in
// place: copy lists before changing them. fn runs under the databus lock, so keep it short.
func (d *Databus) Update(key string, fn func(cur any) (any, error)) error {
	if _, err := d.raw(nameKey(key)); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, _ := d.loadLocked(key)
	cur = expand(cur)
	if dyn, ok := cur.(Dynamic); ok {
		cur = dyn.Value(time.Now())
	}
	nv, err := fn(cur)
	if err != nil {
		return err
	}
	d.storeLocked(key, compactList(nv))
	d.wroteLocked(key, nv)
	return nil
}

// Keys returns every key defined by the template or written since, sorted.
func (d *Databus) Keys() []string {
	seen := map[string]bool{}
	for _, k := range d.schema.keys {
		seen[k.Name] = true
	}
	d.mu.RLock()
	for _, e := range d.extra {
		seen[e.key] = true
	}
	d.mu.RUnlock()
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// GetString returns key's value formatted as text (Python's str() of the value).
func (d *Databus) GetString(key string) (string, error) {
	v, err := d.Get(key)
	if err != nil {
		return "", err
	}
	return FormatValue(v), nil
}

// GetInt returns key's value as an integer; strings holding numbers are accepted. An integer,
// stored or computed now by an integer engine (IntDynamic), is read without boxing it in an
// interface, so that reading a counter allocates nothing.
func (d *Databus) GetInt(key string) (int64, error) { return d.GetIntKey(nameKey(key)) }

// GetIntKey is GetInt of a resolved key.
func (d *Databus) GetIntKey(k Key) (int64, error) {
	v, err := d.raw(k)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case int64:
		return x, nil
	case IntDynamic:
		return x.IntValue(time.Now()), nil
	case Dynamic:
		return ToInt(x.Value(time.Now()))
	}
	return ToInt(expand(v))
}

// ToInt converts a databus value to an integer.
func ToInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 0, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if ferr != nil {
				return 0, fmt.Errorf("%q is not a number", x)
			}
			return int64(f), nil
		}
		return i, nil
	}
	return 0, fmt.Errorf("value of type %T is not a number", v)
}

// FormatValue renders a databus value as Python's str() would.
func FormatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return string(x)
	case []any:
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			if s, ok := e.(string); ok {
				b.WriteString(strconv.Quote(s))
			} else {
				b.WriteString(FormatValue(e))
			}
		}
		b.WriteByte(']')
		return b.String()
	}
	return fmt.Sprint(v)
}
