package sensor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/icsnare/icsnare/internal/striped"
	"github.com/icsnare/icsnare/protocols"
)

// Version is the sensor's version, set at build time with -ldflags "-X ...sensor.Version=…".
var Version = "dev"

// metrics holds the sensor's Prometheus series. No label ever holds an address: labels are
// protocol names, transports, fixed reasons and kinds the protocols draw from small sets.
// The series every request or datagram updates (requests, packets, bytes, latency) are
// striped: a session adds to the cells of its stripe, so sessions served on different
// CPUs do not write one shared word per request.
type metrics struct {
	reg *prometheus.Registry

	connections   *prometheus.CounterVec // protocol, transport
	active        *prometheus.GaugeVec   // protocol
	rejected      *prometheus.CounterVec // protocol, reason
	requests      *striped.CounterVec    // protocol, kind
	requestErrors *striped.CounterVec    // protocol, kind
	panics        *prometheus.CounterVec // protocol
	packets       *striped.CounterVec    // protocol, direction
	bytes         *striped.CounterVec    // protocol, direction
	bus           *busCollector          // the sinks' counters
	udpFlows      prometheus.Gauge

	flowsEnded      *prometheus.CounterVec // protocol, reason
	repliesDropped  *prometheus.CounterVec // protocol, reason
	broadcasts      *prometheus.CounterVec // protocol
	broadcastHosts  *prometheus.CounterVec // protocol
	broadcastCapped *prometheus.CounterVec // protocol, reason
	endpoints       *prometheus.CounterVec // protocol, transport
	endpointsActive *prometheus.GaugeVec   // transport
	evicted         *prometheus.CounterVec // protocol, reason
	closed          *prometheus.CounterVec // protocol, reason
	latency         *striped.HistogramVec  // protocol, transport

	kinds sync.Map // kindKey → *kindCounters
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_connections_total",
		Help: "TCP connections accepted, and UDP flows started, per protocol."}, []string{"protocol", "transport"})
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "icsnare_connections_active",
		Help: "TCP connections open now."}, []string{"protocol"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_connections_rejected_total",
		Help: "Connections closed at once: unknown_host, no_service, global_cap, host_cap, source_cap, source_prefix_cap."}, []string{"protocol", "reason"})
	m.requests = striped.NewCounterVec("icsnare_requests_total",
		"Protocol requests handled, by protocol and request kind.", "protocol", "kind")
	m.requestErrors = striped.NewCounterVec("icsnare_request_errors_total",
		"Requests answered with an error or exception, by protocol and request kind.", "protocol", "kind")
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_handler_panics_total",
		Help: "Handler panics caught; each closed only its own connection."}, []string{"protocol"})
	m.packets = striped.NewCounterVec("icsnare_udp_packets_total", "UDP datagrams received and sent.", "protocol", "direction")
	m.bytes = striped.NewCounterVec("icsnare_bytes_total", "Payload bytes received and sent.", "protocol", "direction")
	m.bus = newBusCollector()
	m.udpFlows = prometheus.NewGauge(prometheus.GaugeOpts{Name: "icsnare_udp_flows",
		Help: "UDP flows (source, host, protocol) tracked now."})
	m.flowsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_udp_flows_ended_total",
		Help: "UDP sessions ended: idle, lifetime, evicted (flow table full), shutdown."}, []string{"protocol", "reason"})
	m.repliesDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_udp_answers_dropped_total",
		Help: "UDP answers dropped: replies (past the per-request count), amplification (past the bound for unverified sources), source_bytes and port_bytes (per-minute byte budgets)."},
		[]string{"protocol", "reason"})
	m.broadcasts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_broadcast_requests_total",
		Help: "Datagrams to a broadcast address fanned out to the hosts of a prefix."}, []string{"protocol"})
	m.broadcastHosts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_broadcast_host_requests_total",
		Help: "Hosts that served a fanned-out broadcast datagram."}, []string{"protocol"})
	m.broadcastCapped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_broadcast_capped_total",
		Help: "Broadcast fan-outs cut short: hosts (host cap), bytes (answer byte cap), rate (per-source or global rate)."},
		[]string{"protocol", "reason"})
	m.endpoints = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_ephemeral_endpoints_total",
		Help: "Ephemeral endpoints opened for services (TFTP transfers, FTP passive data)."}, []string{"protocol", "transport"})
	m.endpointsActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "icsnare_ephemeral_endpoints_active",
		Help: "Ephemeral endpoints open now."}, []string{"transport"})
	m.evicted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_connections_evicted_total",
		Help: "Idle connections closed to admit a new one when a cap was reached (global_cap, host_cap)."}, []string{"protocol", "reason"})
	m.closed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icsnare_connections_closed_total",
		Help: "Connections the sensor closed: request_timeout (a request incomplete past limits.request_timeout)."},
		[]string{"protocol", "reason"})
	m.latency = striped.NewHistogramVec("icsnare_response_latency_seconds",
		"Time from a request's first byte to the first byte of its answer, as the client sees it (the persona's timing model included).",
		latencyBuckets, "protocol", "transport")
	for _, c := range []prometheus.Collector{m.latency, m.evicted, m.closed, m.connections, m.active, m.rejected, m.requests, m.requestErrors,
		m.panics, m.packets, m.bytes, m.bus, m.udpFlows,
		m.flowsEnded, m.repliesDropped, m.broadcasts, m.broadcastHosts, m.broadcastCapped, m.endpoints, m.endpointsActive} {
		f(c)
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "icsnare_build_info",
		Help: "Build information; the value is 1."}, []string{"version", "goversion"})
	build.WithLabelValues(Version, runtime.Version()).Set(1)
	f(build)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// kindKey names one request kind of one protocol.
type kindKey struct{ protocol, kind string }

// kindCounters are the resolved series of one request kind, with a RequestCounter bound to
// each stripe.
type kindCounters struct {
	requests, errors *striped.Counter
	stripes          [striped.Stripes]kindStripe
}

// kindStripe counts one kind's requests in one stripe.
type kindStripe struct {
	kc     *kindCounters
	stripe uint32
}

// Request implements protocols.Metrics. The series of each (protocol, kind) are resolved
// once and cached: kinds come from small fixed sets per protocol, so the cache is as
// bounded as the series themselves, and a request costs a map lookup instead of hashing
// label values in the vector.
func (m *metrics) Request(protocol, kind string, failed bool) {
	m.Counter(protocol, kind, 0).Count(failed)
}

// Counter implements protocols.KindMetrics: a session keeps the counters of its last kind,
// bound to its stripe.
func (m *metrics) Counter(protocol, kind string, stripe uint32) protocols.RequestCounter {
	k := kindKey{protocol, kind}
	v, ok := m.kinds.Load(k)
	if !ok {
		// The error series exists from the kind's first request, at zero when it succeeded.
		kc := &kindCounters{requests: m.requests.WithLabelValues(protocol, kind),
			errors: m.requestErrors.WithLabelValues(protocol, kind)}
		for i := range kc.stripes {
			kc.stripes[i] = kindStripe{kc: kc, stripe: uint32(i)}
		}
		v, _ = m.kinds.LoadOrStore(k, kc)
	}
	return &v.(*kindCounters).stripes[stripe%striped.Stripes]
}

// Count implements protocols.RequestCounter.
func (ks *kindStripe) Count(failed bool) {
	ks.kc.requests.Inc(ks.stripe)
	if failed {
		ks.kc.errors.Inc(ks.stripe)
	}
}

// hostGauges exports host counts from the registry at scrape time.
func (m *metrics) hostGauges(r *hostRegistry) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icsnare_hosts_active",
		Help: "Emulated hosts materialised in memory (contacted and not evicted)."},
		func() float64 { return float64(r.count()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icsnare_hosts_configured",
		Help: "Addresses the host rules cover."}, r.configured))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "icsnare_hosts_created_total",
		Help: "Hosts materialised on first contact (again after eviction)."}, func() float64 { return float64(r.created.Load()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "icsnare_hosts_evicted_total",
		Help: "Idle hosts evicted from memory."}, func() float64 { return float64(r.evicted.Load()) }))
}

// serveMetrics serves /metrics, /healthz, /readyz and, when top is not nil, /debug/top on
// ln until ctx is done. ready says whether the sensor serves its sockets now.
func serveMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry, ready func() bool, top http.Handler, log *slog.Logger) {
	mux := http.NewServeMux()
	if top != nil {
		mux.Handle("/debug/top", top)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second}))
	// /healthz: the process is alive and answers (a supervisor restarts it otherwise).
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	// /readyz: the sockets are bound and served; 503 before and while shutting down.
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not serving\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("icsnare: /metrics, /healthz, /readyz\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server stopped", "err", err)
	}
}

// Label values known before any traffic, so that their series read 0 from the first scrape
// instead of appearing at their first increment (rate() and absent() alerts need them).
var (
	tcpRejectReasons   = []string{"global_cap", "host_cap", "source_cap", "source_prefix_cap"}
	udpRejectReasons   = []string{"no_service", "rate_limited"}
	flowEndReasons     = []string{"idle", "lifetime", "evicted", "shutdown"}
	answerDropReasons  = []string{"replies", "amplification", "source_bytes", "port_bytes"}
	evictReasons       = []string{"global_cap", "host_cap"}
	broadcastCapReason = []string{"hosts", "bytes", "rate"}
)

// latencyBuckets span what ICS devices answer in: a sensor without its timing model in
// tens of microseconds, PLCs and RTUs in milliseconds (a scan cycle), gateways and slow
// serial-backed devices in hundreds of milliseconds to seconds.
var latencyBuckets = []float64{0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}

// initSeries creates the series of every served protocol (protocol → its transports) with
// the fixed label values above.
func (m *metrics) initSeries(served map[string]map[string]bool) {
	m.rejected.WithLabelValues("none", "unknown_host")
	m.rejected.WithLabelValues("none", "no_service")
	m.endpointsActive.WithLabelValues(protocols.TCP)
	m.endpointsActive.WithLabelValues(protocols.UDP)
	for p, transports := range served {
		for _, dir := range []string{"in", "out"} {
			m.bytes.WithLabelValues(p, dir)
		}
		m.panics.WithLabelValues(p)
		for t := range transports {
			m.latency.WithLabelValues(p, t)
		}
		if transports[protocols.TCP] {
			m.connections.WithLabelValues(p, protocols.TCP)
			m.active.WithLabelValues(p)
			m.closed.WithLabelValues(p, "request_timeout")
			for _, r := range tcpRejectReasons {
				m.rejected.WithLabelValues(p, r)
			}
			for _, r := range evictReasons {
				m.evicted.WithLabelValues(p, r)
			}
		}
		if transports[protocols.UDP] {
			m.connections.WithLabelValues(p, protocols.UDP)
			for _, dir := range []string{"in", "out"} {
				m.packets.WithLabelValues(p, dir)
			}
			for _, r := range udpRejectReasons {
				m.rejected.WithLabelValues(p, r)
			}
			for _, r := range flowEndReasons {
				m.flowsEnded.WithLabelValues(p, r)
			}
			for _, r := range answerDropReasons {
				m.repliesDropped.WithLabelValues(p, r)
			}
			for _, r := range broadcastCapReason {
				m.broadcastCapped.WithLabelValues(p, r)
			}
			m.broadcasts.WithLabelValues(p)
			m.broadcastHosts.WithLabelValues(p)
		}
	}
}

// configGauges exports what the configuration set, for alerts that compare with it.
func (m *metrics) configGauges(budget HostBudget, xdpConfigured bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icsnare_hosts_max",
		Help: "Hosts kept in memory at most (limits.max_hosts, or derived from limits.host_memory)."},
		func() float64 { return float64(budget.MaxHosts) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icsnare_memory_available_bytes",
		Help: "Memory the sensor may use: the smallest cgroup limit on its path, or the machine's MemTotal."},
		func() float64 { return float64(budget.Available.Bytes) }))
	xdp := 0.0
	if xdpConfigured {
		xdp = 1
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icsnare_xdp_configured",
		Help: "1 when xdp.interface is set (icsnare_xdp_loaded says whether the program is attached)."},
		func() float64 { return xdp }))
}
