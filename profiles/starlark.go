package profiles

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"math/rand/v2"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// maxSteps bounds one expression's work so a template cannot hang the sensor.
const maxSteps = 5_000_000

// Expr is a compiled template expression (Conpot evaluates these with Python's eval; we run
// them in Starlark with a `random` module seeded per host and no access to anything else).
// Evaluation is bounded in steps and in memory (see MaxValueBytes).
type Expr struct {
	src    string
	name   string
	prog   *starlark.Program
	random bool
}

var exprOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true}

// resultVar receives the expression's value in the one-statement program it compiles to.
const resultVar = "__icsnare_value"

// CompileExpr compiles a Python-style expression such as
// "[random.randint(0,1) for b in range(0,128)]". name is used in error messages.
func CompileExpr(name, src string) (*Expr, error) {
	x, err := exprOptions.ParseExpr(name, src, 0)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", short(src), err)
	}
	x, random := rewrite(x)
	f := &syntax.File{Path: name, Options: exprOptions, Stmts: []syntax.Stmt{&syntax.AssignStmt{
		OpPos: syntax.Start(x), Op: syntax.EQ, LHS: &syntax.Ident{NamePos: syntax.Start(x), Name: resultVar}, RHS: x}}}
	prog, err := starlark.FileProgram(f, predeclared.Has)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", short(src), err)
	}
	return &Expr{src: src, name: name, prog: prog, random: random}, nil
}

// HostIndependent reports whether the expression gives every host the same value (it does
// not use the random module), so it can be evaluated once and shared.
func (e *Expr) HostIndependent() bool { return !e.random }

// Eval runs the expression with a random source seeded by seed and returns a Go value:
// int64 (or *big.Int when it does not fit), float64, string, bool, nil, []byte, []any or
// map[string]any. A value over the size bounds is an error.
func (e *Expr) Eval(seed uint64) (any, error) {
	th := &starlark.Thread{Name: "expr", Print: func(_ *starlark.Thread, msg string) {
		slog.Debug("template print", "expression", e.name, "msg", short(msg))
	}}
	th.SetMaxExecutionSteps(maxSteps)
	th.SetLocal(rngKey, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
	th.SetLocal(budgetKey, &budget{left: maxEvalBytes})
	globals, err := e.prog.Init(th, predeclared)
	if err != nil {
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("expression %q: %s", short(e.src), ee.Msg)
		}
		return nil, fmt.Errorf("expression %q: %w", short(e.src), err)
	}
	v, err := FromStarlark(globals[resultVar])
	if err == nil {
		err = checkValue(v)
	}
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", short(e.src), err)
	}
	return v, nil
}

// Source returns the expression's text.
func (e *Expr) Source() string { return e.src }

func short(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

const rngKey = "icsnare.rng"

var predeclared = starlark.StringDict{
	"random": &starlarkstruct.Module{Name: "random", Members: starlark.StringDict{
		"randint":     starlark.NewBuiltin("randint", rndRandint),
		"randrange":   starlark.NewBuiltin("randrange", rndRandrange),
		"choice":      starlark.NewBuiltin("choice", rndChoice),
		"uniform":     starlark.NewBuiltin("uniform", rndUniform),
		"random":      starlark.NewBuiltin("random", rndRandom),
		"getrandbits": starlark.NewBuiltin("getrandbits", rndGetrandbits),
	}},
	// Python builtins Conpot templates use that Starlark lacks.
	"round": starlark.NewBuiltin("round", pyRound),

	// Size-checked operators and builtins (see bounds.go).
	opMul:       starlark.NewBuiltin(opMul, checkedMul),
	opAdd:       starlark.NewBuiltin(opAdd, checkedAdd),
	opMod:       starlark.NewBuiltin(opMod, checkedMod),
	opMethod:    starlark.NewBuiltin(opMethod, checkedMethod),
	"list":      checkedMaterialise("list"),
	"tuple":     checkedMaterialise("tuple"),
	"dict":      checkedMaterialise("dict"),
	"set":       checkedMaterialise("set"),
	"sorted":    checkedMaterialise("sorted"),
	"reversed":  checkedMaterialise("reversed"),
	"enumerate": checkedMaterialise("enumerate"),
	"zip":       checkedMaterialise("zip"),
	"str":       checkedRender("str"),
	"repr":      checkedRender("repr"),
	"print":     checkedRender("print"),
}

func rng(th *starlark.Thread) *rand.Rand {
	if r, ok := th.Local(rngKey).(*rand.Rand); ok {
		return r
	}
	return rand.New(rand.NewPCG(1, 2))
}

func rndRandint(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var lo, hi int64
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 2, &lo, &hi); err != nil {
		return nil, err
	}
	if hi < lo {
		return nil, fmt.Errorf("randint: empty range (%d, %d)", lo, hi)
	}
	return starlark.MakeInt64(lo + randN(rng(th), uint64(hi-lo)+1)), nil
}

func randN(r *rand.Rand, n uint64) int64 {
	if n == 0 { // the full 64-bit range
		return int64(r.Uint64())
	}
	return int64(r.Uint64N(n))
}

func rndRandrange(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var start, stop, step int64 = 0, math.MinInt64, 1
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &start, &stop, &step); err != nil {
		return nil, err
	}
	if stop == math.MinInt64 {
		start, stop = 0, start
	}
	if step == 0 {
		return nil, errors.New("randrange: step must not be zero")
	}
	var n int64
	if step > 0 {
		n = (stop - start + step - 1) / step
	} else {
		n = (start - stop - step - 1) / -step
	}
	if n <= 0 {
		return nil, fmt.Errorf("randrange: empty range (%d, %d, %d)", start, stop, step)
	}
	return starlark.MakeInt64(start + step*randN(rng(th), uint64(n))), nil
}

func rndChoice(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var seq starlark.Indexable
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &seq); err != nil {
		return nil, err
	}
	if seq.Len() == 0 {
		return nil, errors.New("choice: empty sequence")
	}
	return seq.Index(int(randN(rng(th), uint64(seq.Len())))), nil
}

func rndUniform(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var lo, hi starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 2, &lo, &hi); err != nil {
		return nil, err
	}
	a, ok1 := starlark.AsFloat(lo)
	c, ok2 := starlark.AsFloat(hi)
	if !ok1 || !ok2 {
		return nil, errors.New("uniform: arguments must be numbers")
	}
	return starlark.Float(a + (c-a)*rng(th).Float64()), nil
}

func rndRandom(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 0); err != nil {
		return nil, err
	}
	return starlark.Float(rng(th).Float64()), nil
}

func rndGetrandbits(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var k int
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &k); err != nil {
		return nil, err
	}
	if k < 0 || k > 4096 {
		return nil, fmt.Errorf("getrandbits: k=%d out of range 0..4096", k)
	}
	r := rng(th)
	n := new(big.Int)
	for got := 0; got < k; got += 64 {
		w := r.Uint64()
		if k-got < 64 {
			w >>= uint(64 - (k - got))
		}
		n.Lsh(n, uint(min(64, k-got)))
		n.Or(n, new(big.Int).SetUint64(w))
	}
	return starlark.MakeBigInt(n), nil
}

func pyRound(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	var nd starlark.Value = starlark.None
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &x, &nd); err != nil {
		return nil, err
	}
	f, ok := starlark.AsFloat(x)
	if !ok {
		return nil, errors.New("round: argument must be a number")
	}
	if nd == starlark.None {
		return starlark.MakeInt64(int64(math.RoundToEven(f))), nil
	}
	var digits int
	if err := starlark.AsInt(nd, &digits); err != nil {
		return nil, fmt.Errorf("round: ndigits: %w", err)
	}
	p := math.Pow(10, float64(digits))
	return starlark.Float(math.RoundToEven(f*p) / p), nil
}

// FromStarlark converts a Starlark value to a plain Go value.
func FromStarlark(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		if i, ok := x.Int64(); ok {
			return i, nil
		}
		return x.BigInt(), nil
	case starlark.Float:
		return float64(x), nil
	case starlark.String:
		return string(x), nil
	case starlark.Bytes:
		return []byte(x), nil
	case *starlark.List:
		return seqToGo(x)
	case starlark.Tuple:
		return seqToGo(x)
	case *starlark.Dict:
		m := make(map[string]any, x.Len())
		for _, it := range x.Items() {
			k, ok := starlark.AsString(it[0])
			if !ok {
				k = it[0].String()
			}
			gv, err := FromStarlark(it[1])
			if err != nil {
				return nil, err
			}
			m[k] = gv
		}
		return m, nil
	}
	return nil, fmt.Errorf("value of type %s cannot be stored in the databus", v.Type())
}

func seqToGo(s starlark.Indexable) ([]any, error) {
	out := make([]any, s.Len())
	for i := range out {
		v, err := FromStarlark(s.Index(i))
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
