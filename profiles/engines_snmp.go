package profiles

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Value engines of Conpot's SNMP templates (`<engine type="…">args</engine>`): a value that
// changes on every read. They are Dynamic databus values, so every protocol of a host sees
// the same sequence, and they are also databus functions for template.xml:
//
//	<value type="function" param="[1618895, '1:100:4294967295']">randominc</value>
//
// (param: the initial value, then the engine's argument text).

// EngineKinds lists the value engine types.
var EngineKinds = []string{"increment", "decrement", "randominc", "randomdec", "randomint", "sysuptime", "evaluate", "static"}

// ErrUnknownEngine is ParseEngine's error for an engine type it does not know.
var ErrUnknownEngine = errors.New("unknown engine type")

// EngineSpec is a parsed value engine: its kind and the numbers or expression of its argument.
type EngineSpec struct {
	Kind string
	a, b int64 // step or range
	lim  int64 // reset limit
	expr *Expr
}

// ParseEngine checks an engine's kind and argument text (e.g. "1:100" for increment).
func ParseEngine(kind, arg string) (EngineSpec, error) {
	kind = strings.ToLower(strings.TrimSpace(kind))
	arg = strings.TrimSpace(arg)
	s := EngineSpec{Kind: kind}
	nums := func(defs ...int64) ([]int64, error) {
		out := append([]int64(nil), defs...)
		if arg == "" {
			return out, nil
		}
		parts := strings.Split(arg, ":")
		if len(parts) > len(defs) {
			return nil, fmt.Errorf("engine %s takes at most %d numbers separated by ':', got %q", kind, len(defs), arg)
		}
		for i, p := range parts {
			if strings.TrimSpace(p) == "" {
				continue
			}
			v, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("engine %s: %q is not an integer", kind, p)
			}
			out[i] = v
		}
		return out, nil
	}
	var n []int64
	var err error
	switch kind {
	case "increment":
		n, err = nums(1, math.MaxInt32)
		if err == nil {
			s.a, s.lim = n[0], n[1]
		}
	case "decrement":
		n, err = nums(1, math.MinInt32)
		if err == nil {
			s.a, s.lim = n[0], n[1]
		}
	case "randominc":
		n, err = nums(1, 65535, 2147418112)
		if err == nil {
			s.a, s.b, s.lim = n[0], n[1], n[2]
		}
	case "randomdec":
		n, err = nums(1, 65535, -2147418113)
		if err == nil {
			s.a, s.b, s.lim = n[0], n[1], n[2]
		}
	case "randomint":
		n, err = nums(1, 65535)
		if err == nil {
			s.a, s.b = n[0], n[1]
		}
	case "sysuptime":
		n, err = nums(0)
		if err == nil {
			s.a = n[0]
		}
	case "evaluate":
		if arg == "" {
			return s, fmt.Errorf("engine evaluate needs an expression")
		}
		s.expr, err = CompileExpr("engine evaluate", arg)
	case "static":
	default:
		return s, fmt.Errorf("%w %q (known: %s)", ErrUnknownEngine, kind, strings.Join(EngineKinds, ", "))
	}
	if err != nil {
		return s, err
	}
	if (kind == "randominc" || kind == "randomdec" || kind == "randomint") && s.b < s.a {
		return s, fmt.Errorf("engine %s: empty range %d..%d", kind, s.a, s.b)
	}
	return s, nil
}

// New returns the engine's value for one host, starting at initial (an integer for the
// counting engines). label keeps the random sequences of two engines of a host apart.
func (s EngineSpec) New(env EngineEnv, label string, initial any) (Dynamic, error) {
	switch s.Kind {
	case "static":
		return DynamicFunc(func(time.Time) any { return initial }), nil
	case "sysuptime":
		head, start := s.a, env.Start // not all of env: every SNMP host holds one
		return IntDynamicFunc(func(now time.Time) int64 {
			return head + int64(now.Sub(start)/(10*time.Millisecond))
		}), nil
	case "evaluate":
		var mu sync.Mutex
		r := env.Rand("engine:" + label)
		expr := s.expr
		return DynamicFunc(func(time.Time) any {
			mu.Lock()
			seed := r.Uint64()
			mu.Unlock()
			v, err := expr.Eval(seed)
			if err != nil {
				return initial
			}
			return v
		}), nil
	}
	start, err := ToInt(initial)
	if err != nil && s.Kind != "randomint" {
		return nil, fmt.Errorf("engine %s: initial value: %w", s.Kind, err)
	}
	var mu sync.Mutex
	r := env.Rand("engine:" + label)
	cur := start
	between := func(rr *rand.Rand) int64 { return s.a + rr.Int64N(s.b-s.a+1) }
	return IntDynamicFunc(func(time.Time) int64 {
		mu.Lock()
		defer mu.Unlock()
		v := cur
		switch s.Kind {
		case "increment":
			if cur = v + s.a; cur > s.lim || cur < v {
				cur = start
			}
		case "decrement":
			if cur = v - s.a; cur < s.lim || cur > v {
				cur = start
			}
		case "randominc":
			if cur = v + between(r); cur > s.lim || cur < v {
				cur = start
			}
		case "randomdec":
			if cur = v - between(r); cur < s.lim || cur > v {
				cur = start
			}
		case "randomint":
			v = between(r)
		}
		return v
	}), nil
}

func init() {
	for _, kind := range EngineKinds {
		RegisterFunction(kind, func(env EngineEnv, params []any) (any, error) {
			var initial any = int64(0)
			arg := ""
			if len(params) > 0 {
				initial = params[0]
			}
			if len(params) > 1 {
				arg = FormatValue(params[1])
			}
			if len(params) > 2 {
				return nil, fmt.Errorf("%s: param is [initial, \"argument\"]", kind)
			}
			spec, err := ParseEngine(kind, arg)
			if err != nil {
				return nil, err
			}
			return spec.New(env, kind, initial)
		})
	}
}
