package profiles

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EngineEnv is the host identity a value engine may draw on. Nothing in it comes from the
// real machine: the seed and address are the emulated host's.
type EngineEnv struct {
	Seed     uint64     // the host's seed (per key once handed to a constructor)
	HostSeed uint64     // the host's seed, also in a constructor (HostMAC derives from it)
	Addr     netip.Addr // the emulated host's address
	Bits     int        // the prefix length of the host rule that made it (0: unknown)
	Start    time.Time  // when the host came up (sensor start unless the profile says otherwise)
}

// Rand returns a random source derived from the env's seed and a label.
func (e EngineEnv) Rand(label string) *rand.Rand {
	s := keySeed(e.Seed, label)
	return rand.New(rand.NewPCG(s, s^0xda942042e4dd58b5))
}

// FunctionCtor builds a databus value for a key of type "function". params are the
// evaluated `param` attribute (a list), possibly empty. It may return a Dynamic.
type FunctionCtor func(env EngineEnv, params []any) (any, error)

// FunctionCompiler is a databus function whose parameters are read once per profile: it
// checks params and returns what builds each host's value. A key whose param attribute does
// not depend on the host is compiled when the profile loads, so its hosts share the parsed
// parameters and keep only what they draw from their seed.
type FunctionCompiler func(params []any) (func(env EngineEnv) (any, error), error)

var (
	funcMu    sync.RWMutex
	funcs     = map[string]FunctionCtor{}
	compilers = map[string]FunctionCompiler{}
)

// RegisterCompiledFunction registers a function given as a compiler (see FunctionCompiler).
func RegisterCompiledFunction(name string, compile FunctionCompiler) {
	RegisterFunction(name, func(env EngineEnv, params []any) (any, error) {
		mk, err := compile(params)
		if err != nil {
			return nil, err
		}
		return mk(env)
	})
	funcMu.Lock()
	compilers[name] = compile
	funcMu.Unlock()
}

func lookupCompiler(name string) (FunctionCompiler, bool) {
	funcMu.RLock()
	defer funcMu.RUnlock()
	c, ok := compilers[strings.TrimSpace(name)]
	return c, ok
}

// RegisterFunction makes a databus function available to templates under name (Conpot's
// dotted class path, or a short icsnare name).
func RegisterFunction(name string, ctor FunctionCtor) {
	funcMu.Lock()
	defer funcMu.Unlock()
	if _, dup := funcs[name]; dup {
		panic("profiles: function registered twice: " + name)
	}
	funcs[name] = ctor
}

func lookupFunction(name string) (FunctionCtor, bool) {
	funcMu.RLock()
	defer funcMu.RUnlock()
	f, ok := funcs[strings.TrimSpace(name)]
	return f, ok
}

// FunctionNames lists the registered databus functions, sorted.
func FunctionNames() []string {
	funcMu.RLock()
	defer funcMu.RUnlock()
	out := make([]string, 0, len(funcs))
	for n := range funcs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DynamicFunc adapts a function to Dynamic.
type DynamicFunc func(now time.Time) any

// Value implements Dynamic.
func (f DynamicFunc) Value(now time.Time) any { return f(now) }

// IntDynamic is a Dynamic whose value is always an integer (int64): IntValue gives it
// without boxing it in an interface, so reading it allocates nothing.
type IntDynamic interface {
	Dynamic
	IntValue(now time.Time) int64
}

// IntDynamicFunc is an IntDynamic computed by a function.
type IntDynamicFunc func(now time.Time) int64

// Value implements Dynamic.
func (f IntDynamicFunc) Value(now time.Time) any { return f(now) }

// IntValue implements IntDynamic.
func (f IntDynamicFunc) IntValue(now time.Time) int64 { return f(now) }

// UptimeSeconds is the number of whole seconds a host has been up.
func UptimeSeconds(env EngineEnv, now time.Time) int64 {
	return int64(now.Sub(env.Start) / time.Second)
}

func init() {
	const misc = "conpot.emulators.misc."
	uptime := func(env EngineEnv, params []any) (any, error) {
		start := env.Start
		if len(params) > 0 {
			s, err := ToInt(params[0])
			if err != nil {
				return nil, fmt.Errorf("uptime: started: %w", err)
			}
			if s >= 0 {
				start = time.Unix(s, 0)
			}
		}
		return DynamicFunc(func(now time.Time) any { return int64(now.Sub(start) / time.Second) }), nil
	}
	RegisterFunction(misc+"uptime.Uptime", uptime)
	RegisterFunction("uptime", uptime)

	bits := func(n int) FunctionCtor {
		return func(env EngineEnv, _ []any) (any, error) {
			var mu sync.Mutex
			r := env.Rand("bits")
			return DynamicFunc(func(time.Time) any {
				mu.Lock()
				defer mu.Unlock()
				out := make([]any, n)
				for i := range out {
					out[i] = int64(r.IntN(2))
				}
				return out
			}), nil
		}
	}
	RegisterFunction(misc+"random.Random8BitRegisters", bits(8))
	RegisterFunction("random_bits8", bits(8))
	RegisterFunction(misc+"random.Random16bitRegister", bits(1))
	RegisterFunction("random_bit", bits(1))

	// Conpot's sysinfo engines read the real machine, which gives the honeypot away. These
	// answer with plausible values drawn from the host's seed instead.
	const si = misc + "sysinfo."
	RegisterFunction(si+"CpuLoad", func(env EngineEnv, _ []any) (any, error) {
		var mu sync.Mutex
		r := env.Rand("cpu")
		base := 8 + r.IntN(20)
		return DynamicFunc(func(time.Time) any {
			mu.Lock()
			defer mu.Unlock()
			return int64(base + r.IntN(7) - 3)
		}), nil
	})
	fixed := func(label string, lo, hi int64) FunctionCtor {
		return func(env EngineEnv, _ []any) (any, error) {
			return lo + env.Rand(label).Int64N(hi-lo+1), nil
		}
	}
	RegisterFunction(si+"TotalRam", fixed("ram", 1<<17, 1<<19)) // KiB
	RegisterFunction(si+"StorageSize", fixed("disk", 1<<20, 1<<22))
	RegisterFunction(si+"StorageUsed", fixed("diskused", 1<<18, 1<<20))
	RegisterFunction(si+"BootTime", func(env EngineEnv, _ []any) (any, error) {
		return DynamicFunc(func(now time.Time) any { return UptimeSeconds(env, now) }), nil
	})
	RegisterFunction(si+"CurrentDatetime", func(EngineEnv, []any) (any, error) {
		return DynamicFunc(func(now time.Time) any { return now.UTC().Format("2006-01-02,15:04:05") + ".0" }), nil
	})
	RegisterFunction(si+"LocalIP", func(env EngineEnv, _ []any) (any, error) {
		return env.Addr.String(), nil
	})
	counter := func(label string, perSec int64) FunctionCtor {
		return func(env EngineEnv, _ []any) (any, error) {
			r := env.Rand(label)
			base := r.Int64N(1 << 24)
			rate := perSec/2 + r.Int64N(perSec)
			var last atomic.Int64
			return DynamicFunc(func(now time.Time) any {
				v := base + UptimeSeconds(env, now)*rate
				for { // monotonic even if the clock steps back
					l := last.Load()
					if v <= l {
						return l
					}
					if last.CompareAndSwap(l, v) {
						return v
					}
				}
			}), nil
		}
	}
	RegisterFunction(si+"PacketsSent", counter("pkts-out", 40))
	RegisterFunction(si+"PacketsRecv", counter("pkts-in", 45))
	RegisterFunction(si+"BytesSent", counter("bytes-out", 6000))
	RegisterFunction(si+"BytesRecv", counter("bytes-in", 7000))
	RegisterFunction(si+"TcpCurrEstab", fixed("estab", 1, 4))
}
