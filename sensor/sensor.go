package sensor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/icsnare/icsnare/bpf"
	"github.com/icsnare/icsnare/internal/striped"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/ratelimit"
	"github.com/icsnare/icsnare/state"
)

// Sensor is a configured, not yet running, set of emulated hosts.
type Sensor struct {
	cfg      Config
	log      *slog.Logger
	profiles map[string]*deviceProfile
	hosts    *hostRegistry
	m        *metrics
	serving  atomic.Bool // sockets bound and served (/readyz)
	bus      *Bus
	top      *Top // nil: no /debug/top
	flows    *flowTable
	sources  *sourceCaps
	fanRate  *minuteCounter
	udpBytes *byteBudget

	tcp []*tcpListener
	udp []*udpListener
	// Addrs lists the bound sockets, "tcp 0.0.0.0:502" and so on, once Bind has run.
	Addrs []string

	activeConns atomic.Int64
	connMu      sync.Mutex
	conns       map[net.Conn]*connEntry
	wg          sync.WaitGroup

	sessPrefix string
	sessSeq    atomic.Uint64

	netcfgApplied bool
	xdp           *bpf.Limiter
	identity      *bpf.Identity      // per-host MACs and stacks in the kernel (identity.go)
	portFilter    *bpf.PortFilter    // each host only its profile's ports (portfilter.go)
	portSinks     []io.Closer        // the port filter's sockets for silent addresses
	limits        []limitRule        // every UDP rate limit (planLimits)
	limiter       *ratelimit.Limiter // userspace limits, for ports the kernel does not enforce
	store         *state.Store       // nil without a state directory

	flood *floodTable // nil without events.flood_summary

	pcMu      sync.Mutex
	pcByName  map[string]*protoCounters
	tcpByName map[string]*tcpCounters

	handlers *handlerPool // the goroutines that serve TCP connections
}

// New loads the profiles and prepares the sensor. It binds nothing yet. It refuses
// exactly what Check refuses.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	rep, err := Check(cfg)
	if rep != nil {
		for _, w := range rep.Warnings {
			log.Warn("profile", "warning", w)
		}
	}
	if err != nil {
		return nil, err
	}
	devs := rep.profiles
	var rules []rule
	for _, hr := range cfg.Hosts {
		for _, a := range hr.Addresses {
			p, _ := ParseAddrOrPrefix(a)
			rules = append(rules, newRule(p, hr, devs))
		}
	}
	// Last: nothing is written to the state directory for a configuration New refuses.
	store, seed, boot, err := openState(cfg, log)
	if err != nil {
		return nil, err
	}
	log.Info("host budget", "max_hosts", rep.Hosts.MaxHosts, "from", rep.Hosts.Reason)
	if lim := applyGoMemoryLimit(rep.Hosts.Available); lim > 0 {
		log.Info("go memory limit set from the cgroup", "bytes", lim, "cgroup", rep.Hosts.Available.Source)
	}
	hosts := newHostRegistry(rules, deploymentSeed(seed), rep.Hosts.MaxHosts, cfg.Limits.HostIdle.Duration)
	hosts.boot, hosts.store = boot, store
	var rb [4]byte
	rand.Read(rb[:])
	s := &Sensor{
		cfg: cfg, log: log, profiles: devs, store: store, limits: rep.limits, limiter: rep.limiter,
		hosts:      hosts,
		m:          newMetrics(),
		sources:    newSourceCaps(cfg.Limits.MaxConnsPerSource, cfg.Limits.MaxConnsPerSourcePrefix),
		fanRate:    newMinuteCounter(cfg.Limits.BroadcastPerSourcePerMinute, cfg.Limits.BroadcastPerMinute),
		udpBytes:   newByteBudget(cfg.Limits.UDPBytesPerSource, cfg.Limits.UDPBytesPerPort),
		conns:      map[net.Conn]*connEntry{},
		sessPrefix: hex.EncodeToString(rb[:]),
		pcByName:   map[string]*protoCounters{},
		tcpByName:  map[string]*tcpCounters{},
		handlers:   newHandlerPool(handlerKeep, maxIdleHandlers),
	}
	if cfg.Events.FloodSummary {
		s.flood = newFloodTable()
	}
	s.flows = newFlowTable(cfg.Limits.MaxUDPFlows, cfg.Limits.UDPFlowIdle.Duration, cfg.Limits.UDPFlowLifetime.Duration,
		func(sess *protocols.Session, why string) {
			s.m.flowsEnded.WithLabelValues(sess.Protocol, why).Inc()
			if sum := sess.Summary(); sum != nil {
				sess.Notable() // kept past per_session
				sess.Emit(SessionSummaryEvent, nil, nil, protocols.F("summarised", sum))
			}
		})
	s.tellServices(nil)
	served := map[string]map[string]bool{}
	for _, d := range devs {
		for ep, ds := range d.services {
			if served[ds.protocol] == nil {
				served[ds.protocol] = map[string]bool{}
			}
			served[ds.protocol][ep.Transport] = true
		}
	}
	s.m.initSeries(served)
	s.m.hostGauges(s.hosts)
	s.m.configGauges(rep.Hosts, cfg.XDP.Interface != "")
	if store != nil {
		s.m.stateMetrics(store)
	}
	s.SetBus(NewBus(1)) // no sinks until the caller sets its own
	return s, nil
}

// Registry returns the Prometheus registry, for collectors added by the caller (XDP).
func (s *Sensor) Registry() *prometheus.Registry { return s.m.reg }

// bindAddrs picks the addresses to bind: the configured one, the single configured host
// address, or the wildcard of each address family in use.
func (s *Sensor) bindAddrs() []netip.Addr {
	if s.cfg.Bind.Address != "" {
		return []netip.Addr{netip.MustParseAddr(s.cfg.Bind.Address)}
	}
	rules := s.hosts.rules
	if len(rules) == 1 && rules[0].prefix.IsSingleIP() {
		return []netip.Addr{rules[0].prefix.Addr()}
	}
	var v4, v6 bool
	for _, r := range rules {
		if r.prefix.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	var out []netip.Addr
	if v4 {
		out = append(out, netip.IPv4Unspecified())
	}
	if v6 {
		out = append(out, netip.IPv6Unspecified())
	}
	return out
}

// Bind opens every socket. Call it before dropping privileges.
func (s *Sensor) Bind(ctx context.Context) error {
	eps := map[protocols.Endpoint]bool{}
	for _, d := range s.profiles {
		for ep := range d.services {
			eps[ep] = true
		}
	}
	list := make([]protocols.Endpoint, 0, len(eps))
	for ep := range eps {
		list = append(list, ep)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Port != list[j].Port {
			return list[i].Port < list[j].Port
		}
		return list[i].Transport < list[j].Transport
	})
	lc := net.ListenConfig{}
	for _, addr := range s.bindAddrs() {
		if addr == netip.IPv6Unspecified() && !ipv6Available() {
			s.log.Warn("IPv6 is not available on this machine; serving IPv4 only")
			continue
		}
		fam := "4"
		if addr.Is6() {
			fam = "6"
		}
		for _, ep := range list {
			hp := net.JoinHostPort(addr.String(), strconv.Itoa(ep.Port))
			switch ep.Transport {
			case protocols.TCP:
				ln, err := lc.Listen(ctx, "tcp"+fam, hp)
				if err != nil {
					s.Close()
					return fmt.Errorf("bind tcp %s: %w", hp, err)
				}
				s.tcp = append(s.tcp, &tcpListener{ln: ln.(*net.TCPListener), port: uint16(ep.Port)})
			case protocols.UDP:
				// One socket per reader: with several, SO_REUSEPORT spreads the sources over
				// them by address hash and no two readers contend for one socket.
				ulc, n := lc, s.udpSockets()
				if n > 1 {
					ulc.Control = reusePort
				}
				for range n {
					pc, err := ulc.ListenPacket(ctx, "udp"+fam, hp)
					if err != nil {
						s.Close()
						return fmt.Errorf("bind udp %s: %w", hp, err)
					}
					ul, err := newUDPListener(pc.(*net.UDPConn), addr.Is6(), uint16(ep.Port))
					if err != nil {
						pc.Close()
						s.Close()
						return fmt.Errorf("udp %s: packet info: %w", hp, err)
					}
					s.udp = append(s.udp, ul)
				}
			}
			s.Addrs = append(s.Addrs, ep.Transport+" "+hp)
		}
	}
	s.attachPortFilter()
	return nil
}

// udpSockets is how many sockets (each with one reader) serve one UDP port: by default one
// per two CPUs. A reader's batches then stay large enough to pay for their system calls,
// and the kernel's receive work keeps CPUs of its own; on 2 CPUs one reader served SNMP
// GETs at about 10 % less CPU per request than one per CPU (scripts/bench-ratio.sh).
func (s *Sensor) udpSockets() int {
	if n := s.cfg.Limits.UDPWorkers; n > 0 {
		return n
	}
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// reusePort sets SO_REUSEPORT on a socket before it binds.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// Close closes every socket (Run does this on shutdown).
func (s *Sensor) Close() {
	for _, l := range s.tcp {
		l.ln.Close()
	}
	for _, l := range s.udp {
		l.conn.Close()
	}
	if s.portFilter != nil {
		s.portFilter.Close()
		s.portFilter = nil
	}
	for _, c := range s.portSinks {
		c.Close()
	}
	s.portSinks = nil
}

// SetTop makes the metrics listener serve t's report at /debug/top (to loopback clients);
// t must also be one of the bus's sinks.
func (s *Sensor) SetTop(t *Top) { s.top = t }

// SetBus sets where events go; Run starts delivering them. Call it before SetupNetwork
// and Bind.
func (s *Sensor) SetBus(b *Bus) {
	s.bus = b
	s.m.bus.bus.Store(b)
}

// Run serves until ctx is done, then stops within about two seconds: it closes the
// sockets and every connection, waits for handlers briefly and flushes the events.
// metricsLn may be nil.
func (s *Sensor) Run(ctx context.Context, metricsLn net.Listener) error {
	if s.tcp == nil && s.udp == nil {
		return errors.New("sensor: Run before Bind")
	}
	busCtx, stopBus := context.WithCancel(context.Background())
	budget := s.cfg.Events.ShutdownBudget.Duration
	if budget <= 0 {
		budget = time.Second
	}
	go s.bus.Run(busCtx, budget)
	stCtx, stopStore := context.WithCancel(context.Background())
	if s.store != nil {
		go s.store.Run(stCtx)
	}
	mctx, stopMetrics := context.WithCancel(context.Background())
	if metricsLn != nil {
		var top http.Handler
		if s.top != nil {
			top = s.top
		}
		go serveMetrics(mctx, metricsLn, s.m.reg, s.serving.Load, top, s.log)
	}
	for _, l := range s.tcp {
		s.wg.Add(1)
		go s.acceptLoop(ctx, l)
	}
	for _, l := range s.udp {
		s.wg.Add(1)
		go s.readLoop(ctx, l)
	}
	s.serving.Store(true)
	s.log.Info("sensor running", "sockets", s.Addrs, "profiles", len(s.profiles), "hosts_configured", s.hosts.configured())
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	minute := time.NewTicker(time.Minute)
	defer minute.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			s.m.udpFlows.Set(float64(s.flows.sweep(time.Now())))
			s.hosts.sweep(ctx)
		case <-minute.C:
			if s.flood != nil {
				s.flood.flush(s.bus, s.cfg.SensorID)
			}
		}
	}
	s.log.Info("shutting down")
	s.serving.Store(false)
	s.Close()
	s.flows.closeAll()
	s.closeConns()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(1200 * time.Millisecond):
		s.log.Warn("handlers still running at shutdown; not waiting for them")
	}
	stopMetrics()
	stopStore()
	if s.store != nil {
		s.store.Wait() // commits what handlers wrote
		if err := s.store.Close(); err != nil {
			s.log.Error("state: close", "err", err)
		}
	}
	if s.flood != nil {
		s.flood.flush(s.bus, s.cfg.SensorID)
	}
	stopBus()
	s.bus.Wait()
	return nil
}

func (s *Sensor) newSession(proto, transport string, h *host, local, remote netip.AddrPort) *protocols.Session {
	seq := s.sessSeq.Add(1)
	id := s.sessPrefix + "-" + strconv.FormatUint(seq, 16)
	keep := s.cfg.Events.KeepEvents(proto)
	var onSummarised func(*protocols.Session, int, int) // counts the summarised events in the flood aggregates
	if s.flood != nil && keep > 0 {
		onSummarised = s.flood.hook()
	}
	return &protocols.Session{
		Stripe:   uint32(seq),
		ID:       id,
		Protocol: proto, Transport: transport, Local: local, Remote: remote, Host: h.Host,
		Log:    newSessionLogger(s.log, proto, id),
		Sensor: s.cfg.SensorID, Events: s.bus, Metrics: s.m, MaxPayload: s.cfg.Limits.MaxEventPayload,
		Endpoints: &endpointOpener{s: s, h: h}, Start: time.Now().UTC(),
		KeepEvents: keep, OnSummarised: onSummarised,
	}
}

// protoCounters caches a protocol's UDP series so the packet path does no label lookups.
type protoCounters struct {
	in, out, bytesIn, bytesOut *striped.Counter
	latency                    *striped.Histogram // of UDP answers
}

func (s *Sensor) protoCounters(proto string) *protoCounters {
	return counterCache(s, s.pcByName, proto, func() *protoCounters {
		return &protoCounters{
			in: s.m.packets.WithLabelValues(proto, "in"), out: s.m.packets.WithLabelValues(proto, "out"),
			bytesIn: s.m.bytes.WithLabelValues(proto, "in"), bytesOut: s.m.bytes.WithLabelValues(proto, "out"),
			latency: s.m.latency.WithLabelValues(proto, protocols.UDP),
		}
	})
}

// tcpCounters are one protocol's TCP connection metrics, looked up by label once.
type tcpCounters struct {
	conns             prometheus.Counter
	active            prometheus.Gauge
	bytesIn, bytesOut *striped.Counter
	latency           *striped.Histogram
}

func (s *Sensor) tcpCounters(proto string) *tcpCounters {
	return counterCache(s, s.tcpByName, proto, func() *tcpCounters {
		return &tcpCounters{
			conns: s.m.connections.WithLabelValues(proto, protocols.TCP), active: s.m.active.WithLabelValues(proto),
			bytesIn: s.m.bytes.WithLabelValues(proto, "in"), bytesOut: s.m.bytes.WithLabelValues(proto, "out"),
			latency: s.m.latency.WithLabelValues(proto, protocols.TCP),
		}
	})
}

// counterCache returns cache's series of proto, resolving them with resolve the first time
// (under s.pcMu).
func counterCache[T any](s *Sensor, cache map[string]*T, proto string, resolve func() *T) *T {
	s.pcMu.Lock()
	defer s.pcMu.Unlock()
	if c, ok := cache[proto]; ok {
		return c
	}
	c := resolve()
	cache[proto] = c
	return c
}

// handlerKeep is how long an idle connection handler goroutine waits for the next
// connection before it exits.
const handlerKeep = 10 * time.Second

// maxIdleHandlers bounds the idle handler goroutines (and the stacks they keep).
const maxIdleHandlers = 256

// ipv6Available reports whether an IPv6 socket can be bound here.
func ipv6Available() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
