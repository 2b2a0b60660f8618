package profiles

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Template expressions are bounded in memory as well as in steps, so that no template
// (a hostile one included) can exhaust the sensor: `'A'*1000000000` or `[0]*200000000`
// fail at load with the key's file and line instead of allocating gigabytes.
const (
	// MaxValueBytes bounds one string or bytes value, and the text one value renders to.
	MaxValueBytes = 1 << 20
	// MaxValueElems bounds the elements of one list, tuple or dict.
	MaxValueElems = 100_000
	// maxEvalBytes bounds what the size-changing operations of one evaluation may
	// allocate together.
	maxEvalBytes = 32 << 20
	// MaxProfileBytes bounds the values of one profile's databus together, as evaluated at
	// load.
	MaxProfileBytes = 16 << 20
)

// errTooBig is wrapped by every bound violation.
var errTooBig = errors.New("too large")

func tooBig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errTooBig, fmt.Sprintf(format, args...))
}

// Checked operations replace the operators and methods that can grow a value in one step.
// The rewritten expression calls them instead; each checks the size of its result before
// computing it and charges it to the evaluation's budget.
const (
	opMul    = "__icsnare_mul"
	opAdd    = "__icsnare_add"
	opMod    = "__icsnare_mod"
	opMethod = "__icsnare_method"
)

// growMethods are the string methods whose result can be much larger than their receiver.
var growMethods = map[string]bool{"replace": true, "join": true, "format": true}

// rewrite replaces, in place, every *, + and % by a call of its checked operation and
// every call of a growing method by a call through opMethod. It reports whether the
// expression uses the random module (so its value differs between hosts).
func rewrite(e syntax.Expr) (syntax.Expr, bool) {
	rw := &rewriter{}
	return rw.expr(e), rw.random
}

type rewriter struct{ random bool }

func (rw *rewriter) exprs(list []syntax.Expr) {
	for i, e := range list {
		list[i] = rw.expr(e)
	}
}

func (rw *rewriter) expr(e syntax.Expr) syntax.Expr {
	switch x := e.(type) {
	case nil:
		return nil
	case *syntax.Ident:
		if x.Name == "random" {
			rw.random = true
		}
	case *syntax.BinaryExpr:
		x.X, x.Y = rw.expr(x.X), rw.expr(x.Y)
		var op string
		switch x.Op {
		case syntax.STAR:
			op = opMul
		case syntax.PLUS:
			op = opAdd
		case syntax.PERCENT:
			op = opMod
		default:
			return x
		}
		return &syntax.CallExpr{Fn: &syntax.Ident{NamePos: x.OpPos, Name: op}, Lparen: x.OpPos,
			Args: []syntax.Expr{x.X, x.Y}, Rparen: x.OpPos}
	case *syntax.CallExpr:
		x.Fn = rw.expr(x.Fn)
		rw.exprs(x.Args)
		if d, ok := x.Fn.(*syntax.DotExpr); ok && growMethods[d.Name.Name] {
			name := &syntax.Literal{Token: syntax.STRING, TokenPos: d.NamePos, Raw: `"` + d.Name.Name + `"`, Value: d.Name.Name}
			x.Args = append([]syntax.Expr{d.X, name}, x.Args...)
			x.Fn = &syntax.Ident{NamePos: d.NamePos, Name: opMethod}
		}
	case *syntax.ParenExpr:
		x.X = rw.expr(x.X)
	case *syntax.DotExpr:
		x.X = rw.expr(x.X)
	case *syntax.IndexExpr:
		x.X, x.Y = rw.expr(x.X), rw.expr(x.Y)
	case *syntax.SliceExpr:
		x.X, x.Lo, x.Hi, x.Step = rw.expr(x.X), rw.expr(x.Lo), rw.expr(x.Hi), rw.expr(x.Step)
	case *syntax.UnaryExpr:
		x.X = rw.expr(x.X)
	case *syntax.CondExpr:
		x.Cond, x.True, x.False = rw.expr(x.Cond), rw.expr(x.True), rw.expr(x.False)
	case *syntax.ListExpr:
		rw.exprs(x.List)
	case *syntax.TupleExpr:
		rw.exprs(x.List)
	case *syntax.DictExpr:
		rw.exprs(x.List)
	case *syntax.DictEntry:
		x.Key, x.Value = rw.expr(x.Key), rw.expr(x.Value)
	case *syntax.LambdaExpr:
		rw.exprs(x.Params)
		x.Body = rw.expr(x.Body)
	case *syntax.Comprehension:
		x.Body = rw.expr(x.Body)
		for _, c := range x.Clauses {
			switch cl := c.(type) {
			case *syntax.ForClause:
				cl.X = rw.expr(cl.X)
			case *syntax.IfClause:
				cl.Cond = rw.expr(cl.Cond)
			}
		}
	}
	return e
}

// budgetKey holds an evaluation's remaining allocation budget in the thread.
const budgetKey = "icsnare.budget"

type budget struct{ left int64 }

// charge takes n bytes from the evaluation's budget.
func charge(th *starlark.Thread, n int64) error {
	b, ok := th.Local(budgetKey).(*budget)
	if !ok {
		return nil
	}
	if n > b.left {
		return tooBig("the expression allocates more than %d MiB", maxEvalBytes>>20)
	}
	b.left -= n
	return nil
}

// elemBytes is what one list element costs, for the budget.
const elemBytes = 16

// checkResult checks a would-be result of nbytes bytes (strings) or nelems elements.
func checkResult(th *starlark.Thread, what string, nbytes, nelems int64) error {
	if nbytes > MaxValueBytes {
		return tooBig("%s would make %d bytes; the limit is %d", what, nbytes, MaxValueBytes)
	}
	if nelems > MaxValueElems {
		return tooBig("%s would make %d elements; the limit is %d", what, nelems, MaxValueElems)
	}
	return charge(th, nbytes+nelems*elemBytes)
}

func seqLen(v starlark.Value) (int64, bool) {
	switch x := v.(type) {
	case *starlark.List:
		return int64(x.Len()), true
	case starlark.Tuple:
		return int64(x.Len()), true
	}
	return 0, false
}

func strLen(v starlark.Value) (int64, bool) {
	switch x := v.(type) {
	case starlark.String:
		return int64(len(x)), true
	case starlark.Bytes:
		return int64(len(x)), true
	}
	return 0, false
}

func checkedMul(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	x, y := args[0], args[1]
	if _, ok := y.(starlark.Int); !ok {
		x, y = y, x // n * seq
	}
	if n, ok := y.(starlark.Int); ok {
		count, ok := n.Int64()
		if !ok {
			count = 1 << 62
		}
		count = max(count, 0)
		if l, ok := strLen(x); ok && l > 0 {
			if err := checkResult(th, "repetition", mulSat(l, count), 0); err != nil {
				return nil, err
			}
		} else if l, ok := seqLen(x); ok && l > 0 {
			if err := checkResult(th, "repetition", 0, mulSat(l, count)); err != nil {
				return nil, err
			}
		} else if xi, ok := x.(starlark.Int); ok {
			bits := int64(xi.BigInt().BitLen() + n.BigInt().BitLen())
			if err := checkResult(th, "multiplication", bits/8, 0); err != nil {
				return nil, err
			}
		}
	}
	return starlark.Binary(syntax.STAR, args[0], args[1])
}

func mulSat(a, b int64) int64 {
	if a != 0 && b > (1<<62)/a {
		return 1 << 62
	}
	return a * b
}

func checkedAdd(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	x, y := args[0], args[1]
	if lx, ok := strLen(x); ok {
		if ly, ok := strLen(y); ok {
			if err := checkResult(th, "concatenation", lx+ly, 0); err != nil {
				return nil, err
			}
		}
	} else if lx, ok := seqLen(x); ok {
		if ly, ok := seqLen(y); ok {
			if err := checkResult(th, "concatenation", 0, lx+ly); err != nil {
				return nil, err
			}
		}
	}
	return starlark.Binary(syntax.PLUS, x, y)
}

func checkedMod(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if f, ok := args[0].(starlark.String); ok {
		// Each conversion renders at most the largest argument.
		n := int64(len(f)) + int64(strings.Count(string(f), "%"))*renderedSize(args[1], MaxValueBytes+1)
		if err := checkResult(th, "string formatting", n, 0); err != nil {
			return nil, err
		}
	}
	return starlark.Binary(syntax.PERCENT, args[0], args[1])
}

func checkedMethod(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 2 {
		return nil, errors.New("internal: method call without receiver")
	}
	recv, nameV, rest := args[0], args[1], args[2:]
	name, _ := starlark.AsString(nameV)
	if s, ok := recv.(starlark.String); ok {
		var n int64
		switch name {
		case "replace":
			if len(rest) >= 2 {
				oldS, _ := starlark.AsString(rest[0])
				newS, _ := starlark.AsString(rest[1])
				n = int64(len(s)) + (int64(len(s))/int64(max(len(oldS), 1))+1)*int64(len(newS))
			}
		case "join":
			if len(rest) == 1 {
				n = joinedSize(int64(len(s)), rest[0])
			}
		case "format":
			largest := int64(0)
			for _, a := range rest {
				largest = max(largest, renderedSize(a, MaxValueBytes+1))
			}
			for _, kv := range kw {
				largest = max(largest, renderedSize(kv[1], MaxValueBytes+1))
			}
			n = int64(len(s)) + int64(strings.Count(string(s), "{"))*largest
		}
		if err := checkResult(th, "str."+name, n, 0); err != nil {
			return nil, err
		}
	}
	ha, ok := recv.(starlark.HasAttrs)
	if !ok {
		return nil, fmt.Errorf("%s has no .%s field or method", recv.Type(), name)
	}
	m, err := ha.Attr(name)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%s has no .%s field or method", recv.Type(), name)
	}
	return starlark.Call(th, m, rest, kw)
}

// joinedSize is the length sep.join(it) would have (capped just above the limit).
func joinedSize(sep int64, it starlark.Value) int64 {
	iter, ok := it.(starlark.Iterable)
	if !ok {
		return 0
	}
	if l, ok := it.(starlark.Sequence); ok && int64(l.Len()) > MaxValueElems {
		return MaxValueBytes + 1
	}
	i := iter.Iterate()
	defer i.Done()
	var n int64
	var v starlark.Value
	for count := 0; i.Next(&v); count++ {
		if count > MaxValueElems {
			return MaxValueBytes + 1
		}
		l, _ := strLen(v)
		n += l + sep
		if n > MaxValueBytes {
			return n
		}
	}
	return n
}

// renderedSize estimates the length of str(v), stopping once it passes limit.
func renderedSize(v starlark.Value, limit int64) int64 {
	switch x := v.(type) {
	case starlark.String:
		return int64(len(x)) + 2
	case starlark.Bytes:
		return int64(len(x))*4 + 3
	case starlark.Int:
		return int64(x.BigInt().BitLen())/3 + 2
	case starlark.Indexable:
		n := int64(2)
		for i := range x.Len() {
			n += renderedSize(x.Index(i), limit-n) + 2
			if n > limit {
				return n
			}
		}
		return n
	case *starlark.Dict:
		n := int64(2)
		for _, kv := range x.Items() {
			n += renderedSize(kv[0], limit-n) + renderedSize(kv[1], limit-n) + 4
			if n > limit {
				return n
			}
		}
		return n
	}
	return 32
}

// checkedMaterialise wraps a builtin that copies its iterable argument into a new list,
// tuple, dict or set, refusing arguments longer than MaxValueElems (a lazy range(10**9)).
func checkedMaterialise(name string) *starlark.Builtin {
	orig, _ := starlark.Universe[name].(*starlark.Builtin)
	return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		for _, a := range args {
			if s, ok := a.(starlark.Sequence); ok {
				if err := checkResult(th, name+"()", 0, int64(s.Len())); err != nil {
					return nil, err
				}
			}
		}
		return starlark.Call(th, orig, args, kw)
	})
}

// checkedRender wraps str and repr, which render a value as text.
func checkedRender(name string) *starlark.Builtin {
	orig, _ := starlark.Universe[name].(*starlark.Builtin)
	return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		for _, a := range args {
			if err := checkResult(th, name+"()", renderedSize(a, MaxValueBytes+1), 0); err != nil {
				return nil, err
			}
		}
		return starlark.Call(th, orig, args, kw)
	})
}

// valueSize measures a converted databus value (bytes of text, elements of collections).
func valueSize(v any) (bytes, elems int64) {
	switch x := v.(type) {
	case string:
		return int64(len(x)), 0
	case []byte:
		return int64(len(x)), 0
	case []any:
		elems = int64(len(x))
		for _, e := range x {
			b, n := valueSize(e)
			bytes += b
			elems += n
		}
	case map[string]any:
		elems = int64(len(x))
		for k, e := range x {
			b, n := valueSize(e)
			bytes += b + int64(len(k))
			elems += n
		}
	default:
		return 8, 0
	}
	return bytes, elems
}

// checkValue applies the per-value bounds to a converted value.
func checkValue(v any) error {
	b, n := valueSize(v)
	if b > MaxValueBytes {
		return tooBig("the value holds %d bytes of text; the limit is %d", b, MaxValueBytes)
	}
	if n > MaxValueElems {
		return tooBig("the value holds %d elements; the limit is %d", n, MaxValueElems)
	}
	return nil
}
