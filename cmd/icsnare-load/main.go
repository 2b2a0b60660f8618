// Command icsnare-load is a bounded load generator for a running icsnare sensor. It only
// targets loopback or the test namespaces' ranges (198.18.0.0/15, fd00::/8), stops after
// -duration or -max-requests, and reports requests/s, latency percentiles and, with -pid,
// the sensor's CPU time per request.
//
//	icsnare-load -mode modbus -target 127.0.0.1:10502 -conns 16 -duration 10s -pid 1234
//	icsnare-load -mode snmp -target 127.0.0.1:10161 -conns 16 -duration 10s
//	icsnare-load -mode enip-identity -target 127.0.0.1:54818 -conns 16 -duration 10s
//	icsnare-load -mode enip-readtag -tag SCADA -target 127.0.0.1:54818 -conns 16 -duration 10s
//	icsnare-load -mode iec104-gi -target 127.0.0.1:12404 -conns 8 -duration 10s
//	icsnare-load -mode ipmi-session -target 127.0.0.1:10623 -conns 8 -duration 10s
//	icsnare-load -mode ipmi-chassis -target 127.0.0.1:10623 -conns 8 -duration 10s
//	icsnare-load -mode bacnet -target 127.0.0.1:47808 -conns 16 -duration 10s
//	icsnare-load -mode s7comm -quantity 10 -target 127.0.0.1:10102 -conns 16 -duration 10s
//	icsnare-load -mode http -path / -target 127.0.0.1:10080 -conns 32 -duration 10s
//	icsnare-load -mode ftp -command PWD -target 127.0.0.1:10021 -conns 8 -duration 10s
//	icsnare-load -mode tftp -target 127.0.0.1:10069 -conns 8 -duration 10s
//	icsnare-load -mode kamstrup-meter -register 1 -target 127.0.0.1:11025 -conns 60 -duration 20s
//	icsnare-load -mode kamstrup-management -command '!GV' -target 127.0.0.1:60100 -conns 60 -duration 20s
//	icsnare-load -mode guardian-ast -command I20100 -target 127.0.0.1:20001 -conns 8 -duration 10s
//
// The proxy relays bytes: any TCP mode drives a proxied port (modbus through a proxy to a
// Modbus backend, say).
//
// `icsnare-load wrk -target 127.0.0.1:10080 -path /index.html -threads 2 -conns 32` runs wrk
// instead of a built-in mode, with the same report and record.
//
// With -json FILE each run appends one JSON line (see record) labelled with -label and
// -server; `icsnare-load summarize FILE…` groups such lines into rounds and prints each
// label's icsnare/ceiling ratios (min/median/max), writing them as JSON with -out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// workload drives one connection's worth of requests.
type workload interface {
	// run sends requests until ctx is done or budget says stop, recording each latency.
	run(ctx context.Context, target string, rec *recorder, budget *pacer) error
}

var workloads = map[string]func(opts) workload{
	"modbus":        newModbus,
	"snmp":          newSNMP,
	"enip-identity": newENIPIdentity,
	"enip-readtag":  newENIPReadTag,
	"iec104-gi":     newIECGI,
	"ipmi-session":  newIPMISession,
	"ipmi-chassis":  newIPMIChassis,
	"bacnet":        newBACnet,
	"s7comm":        newS7,
	"http":          newHTTP,
	// The other protocols the sensor serves.
	"ftp":                 newFTP,
	"tftp":                newTFTP,
	"kamstrup-meter":      newKamstrupMeter,
	"kamstrup-management": newKamstrupManagement,
	"guardian-ast":        newGuardianAST,
}

// checker is a workload that validates its options; an error exits with status 2.
type checker interface {
	check() error
}

type opts struct {
	depth    int // requests in flight per connection (pipelining)
	quantity int // registers per Modbus read
	unit     int
	oid      string
	comm     string
	// EtherNet/IP
	transport string // enip-identity: udp or tcp
	tag       string // enip-readtag: the tag to read
	// IEC 60870-5-104
	ca int // common address of the interrogation
	// IPMI
	user, password string
	// BACnet
	property int // bacnet: the device property to read
	// HTTP
	path   string // http: the path to GET
	status int    // http: the status expected
	// FTP, Kamstrup management, Guardian AST
	command string // the command each request sends ("": the mode's default)
	login   string // ftp: user:password
	// TFTP
	file string // tftp: the file each request reads ("": the mode's default)
	// Kamstrup meter
	register int // kamstrup-meter: the register each request reads
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "summarize" {
		return summarize(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "wrk" {
		return runWrk(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("icsnare-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "modbus", "workload: modbus (FC3 reads), snmp (v2c GET), enip-identity (ListIdentity), enip-readtag\n"+
		"(RegisterSession, then Read Tag), iec104-gi (STARTDT, then station interrogations), ipmi-session\n"+
		"(RMCP+ suite 3 open, RAKP 1-4, close), ipmi-chassis (a suite 3 session, then Get Chassis Status)\n"+
		"bacnet (ReadProperty of a device property), s7comm (COTP CR, Setup Communication, then Read Var\n"+
		"of -quantity bytes of the M area), http (keep-alive GETs of -path), ftp (a login, then -command),\n"+
		"tftp (a whole read of -file, as one request), kamstrup-meter (GetRegister of -register),\n"+
		"kamstrup-management (-command lines) or guardian-ast (-command, a TLS-350 function)")
	target := fs.String("target", "127.0.0.1:502", "sensor `host:port` (loopback or 198.18.0.0/15 / fd00::/8 only)")
	conns := fs.Int("conns", 16, "parallel connections (UDP sockets for snmp, enip-identity over udp, ipmi-*, bacnet)")
	duration := fs.Duration("duration", 10*time.Second, "measured time (at most 5m)")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured time before it")
	maxReq := fs.Int64("max-requests", 50_000_000, "stop after this many requests")
	pid := fs.Int("pid", 0, "sensor `pid`, to report its CPU time")
	rf := addRecordFlags(fs, "", "(default: the mode)")
	rate := fs.Float64("rate", 0, "offered load: at most this many requests/s over all connections, each paced to its share (0: each connection sends its next request when the answer comes)")
	var o opts
	fs.StringVar(&o.path, "path", "/", "http: the path to GET")
	fs.IntVar(&o.status, "status", 200, "http: the status code expected")
	fs.IntVar(&o.depth, "depth", 1, "requests in flight per connection (modbus, enip-identity over tcp, enip-readtag)")
	fs.IntVar(&o.quantity, "quantity", 10, "registers per Modbus FC3 read, bytes per s7comm Read Var")
	fs.IntVar(&o.unit, "unit", 255, "Modbus unit id")
	fs.StringVar(&o.oid, "oid", "1.3.6.1.2.1.1.1.0", "SNMP OID to GET")
	fs.StringVar(&o.comm, "community", "public", "SNMP community")
	fs.StringVar(&o.transport, "transport", "udp", "enip-identity: `udp` (one request outstanding per socket) or tcp")
	fs.StringVar(&o.tag, "tag", "SCADA", "enip-readtag: the Logix tag to read (one element)")
	fs.IntVar(&o.ca, "ca", 0xFFFF, "iec104-gi: common address (65535: broadcast)")
	fs.StringVar(&o.user, "user", "Administrator", "ipmi-*: user name (1-16 octets)")
	fs.StringVar(&o.password, "password", "Password", "ipmi-*: password (at most 20 octets)")
	fs.IntVar(&o.property, "property", 77, "bacnet: the device property to read (77: object-name)")
	fs.StringVar(&o.command, "command", "", "ftp, kamstrup-management, guardian-ast: the command each request sends (default: the mode's own)")
	fs.StringVar(&o.login, "login", "anonymous:icsnare-load@example.org", "ftp: `user:password` to log in with")
	fs.StringVar(&o.file, "file", "", "tftp: the file each request reads (default: the mode's own)")
	fs.IntVar(&o.register, "register", -1, "kamstrup-meter: the register each request reads (default: the mode's own)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mk, ok := workloads[*mode]
	if !ok {
		fmt.Fprintf(stderr, "icsnare-load: unknown mode %q\n", *mode)
		return 2
	}
	if err := checkTarget(*target); err != nil {
		fmt.Fprintf(stderr, "icsnare-load: %v\n", err)
		return 2
	}
	if *conns < 1 || *conns > 4096 || *duration <= 0 || *duration > 5*time.Minute || *warmup < 0 || *warmup > time.Minute || o.depth < 1 || o.depth > 64 {
		fmt.Fprintln(stderr, "icsnare-load: -conns 1..4096, -duration up to 5m, -warmup up to 1m, -depth 1..64")
		return 2
	}
	if (o.transport != "udp" && o.transport != "tcp") || len(o.tag) == 0 || len(o.tag) > 255 || o.ca < 0 || o.ca > 0xFFFF ||
		len(o.user) == 0 || len(o.user) > 16 || len(o.password) > 20 {
		fmt.Fprintln(stderr, "icsnare-load: -transport udp or tcp, -tag 1..255 octets, -ca 0..65535, -user 1..16 octets, -password at most 20")
		return 2
	}
	if o.property < 0 || o.property > 0x3FFFFF {
		fmt.Fprintln(stderr, "icsnare-load: -property 0..4194303")
		return 2
	}
	if o.quantity < 1 || o.quantity > 125 || len(o.path) == 0 || o.path[0] != '/' || strings.ContainsAny(o.path, " \r\n") {
		fmt.Fprintln(stderr, "icsnare-load: -quantity 1..125, -path an absolute path without spaces")
		return 2
	}
	w := mk(o)
	if c, ok := w.(checker); ok {
		if err := c.check(); err != nil {
			fmt.Fprintf(stderr, "icsnare-load: %v\n", err)
			return 2
		}
	}
	var every time.Duration // one connection's interval between requests
	if *rate > 0 {
		every = time.Duration(float64(*conns) / *rate * float64(time.Second))
	}
	res, err := measure(w, *target, *conns, *warmup, *duration, *maxReq, *pid, every)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare-load: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "mode=%s target=%s conns=%d depth=%d duration=%s\n", *mode, *target, *conns, o.depth, res.elapsed.Round(time.Millisecond))
	fmt.Fprint(stdout, res.String())
	if *rf.json != "" {
		if *rf.label == "" {
			*rf.label = *mode
		}
		if err := appendRecord(*rf.json, newRecord(*rf.label, *rf.server, *rf.round, *mode, *conns, res)); err != nil {
			fmt.Fprintf(stderr, "icsnare-load: %v\n", err)
			return 1
		}
	}
	if res.ok == 0 {
		return 1
	}
	return 0
}

// checkTarget refuses anything but loopback and the namespace test ranges.
func checkTarget(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("-target must be an IP address: %w", err)
	}
	for _, p := range []string{"198.18.0.0/15", "fd00::/8"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return nil
		}
	}
	if !a.IsLoopback() {
		return fmt.Errorf("-target %s: only loopback or the test namespaces' 198.18.0.0/15 and fd00::/8 are allowed", a)
	}
	return nil
}

type result struct {
	ok, failed   int64
	elapsed      time.Duration
	p50, p99, mx time.Duration
	cpu          time.Duration // sensor CPU during the measured interval; 0 if unknown
	// lost counts the connections that ended with an error before the run did (the server
	// closed them, an answer was wrong); lostErr is the first such error.
	lost    int
	lostErr error
}

func (r result) String() string {
	var b strings.Builder
	rate := float64(r.ok) / r.elapsed.Seconds()
	fmt.Fprintf(&b, "requests=%d errors=%d rate=%.0f req/s p50=%s p99=%s max=%s\n", r.ok, r.failed, rate, r.p50, r.p99, r.mx)
	if r.cpu > 0 && r.ok > 0 {
		fmt.Fprintf(&b, "sensor_cpu=%s (%.0f%% of one core) cpu_per_request=%s\n", r.cpu.Round(time.Millisecond),
			100*r.cpu.Seconds()/r.elapsed.Seconds(), (r.cpu / time.Duration(r.ok)).Round(10*time.Nanosecond))
	}
	if r.lost > 0 {
		fmt.Fprintf(&b, "connections_lost=%d first_error=%q\n", r.lost, r.lostErr.Error())
	}
	return b.String()
}

func measure(w workload, target string, conns int, warmup, duration time.Duration, maxReq int64, pid int, every time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), warmup+duration)
	defer cancel()
	var left atomic.Int64
	left.Store(maxReq)
	recs := make([]*recorder, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	measureFrom := start.Add(warmup)
	for i := range recs {
		recs[i] = newRecorder(measureFrom)
		wg.Add(1)
		go func(r *recorder) {
			defer wg.Done()
			if err := w.run(ctx, target, r, &pacer{left: &left, every: every}); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs <- err
			}
		}(recs[i])
	}
	var cpu0 cpuSample
	if pid > 0 {
		time.Sleep(time.Until(measureFrom))
		cpu0, _ = procCPU(pid)
	}
	wg.Wait()
	end := time.Now()
	var res result
	if pid > 0 {
		if c1, err := procCPU(pid); err == nil {
			res.cpu = c1.since(cpu0)
		}
	}
	close(errs)
	var firstErr error
	for err := range errs {
		if firstErr == nil {
			firstErr = err
		}
		res.lost++
	}
	res.lostErr = firstErr
	all := newRecorder(measureFrom)
	for _, r := range recs {
		all.merge(r)
	}
	res.ok, res.failed = all.ok, all.failed
	res.elapsed = end.Sub(measureFrom)
	if res.elapsed <= 0 {
		res.elapsed = end.Sub(start)
	}
	res.p50, res.p99, res.mx = all.percentile(0.50), all.percentile(0.99), all.max
	if res.ok == 0 && firstErr != nil {
		return res, firstErr
	}
	return res, nil
}

// pacer is one connection's view of the shared request budget and, with -rate, its pace:
// Add, called before each further request, waits for the connection's next slot.
type pacer struct {
	left  *atomic.Int64
	every time.Duration // 0: no pace
	next  time.Time
	// The clock and the wait; nil: time.Now and time.Sleep.
	now   func() time.Time
	sleep func(time.Duration)
}

// Add takes d (-1: one request) from the budget and returns what is left, after waiting
// for the connection's next slot when it is paced. A connection that fell behind by more
// than one interval starts afresh rather than sending a burst to catch up.
func (p *pacer) Add(d int64) int64 {
	if p.every > 0 {
		clock, sleep := p.now, p.sleep
		if clock == nil {
			clock, sleep = time.Now, time.Sleep
		}
		now := clock()
		switch {
		case p.next.IsZero() || now.Sub(p.next) > p.every:
			p.next = now
		case p.next.After(now):
			sleep(p.next.Sub(now))
		}
		p.next = p.next.Add(p.every)
	}
	return p.left.Add(d)
}

// recorder keeps a latency histogram of microseconds: exact below 256 µs, within 1 %
// above, up to maxLatency (a slower answer counts as maxLatency), in about 30 KB.
type recorder struct {
	from       time.Time
	hist       *hdrhistogram.Histogram
	ok, failed int64
	max        time.Duration
}

// maxLatency bounds what the histogram tells apart: longer than a run can last.
const maxLatency = 10 * time.Minute

func newRecorder(from time.Time) *recorder {
	return &recorder{from: from, hist: hdrhistogram.New(1, maxLatency.Microseconds(), 2)}
}

// record notes one finished request that was sent at sent.
func (r *recorder) record(sent time.Time, err error) {
	if sent.Before(r.from) {
		return
	}
	if err != nil {
		r.failed++
		return
	}
	d := time.Since(sent)
	r.ok++
	if d > r.max {
		r.max = d
	}
	r.observe(d)
}

// observe adds one latency to the histogram.
func (r *recorder) observe(d time.Duration) {
	us := min(max(d.Microseconds(), 1), maxLatency.Microseconds())
	_ = r.hist.RecordValue(us) // within the histogram's range by construction
}

func (r *recorder) merge(o *recorder) {
	r.hist.Merge(o.hist)
	r.ok += o.ok
	r.failed += o.failed
	if o.max > r.max {
		r.max = o.max
	}
}

// percentile is the latency below which a fraction p of the successful requests
// answered (0 when none did).
func (r *recorder) percentile(p float64) time.Duration {
	if r.hist.TotalCount() == 0 {
		return 0
	}
	return time.Duration(r.hist.ValueAtQuantile(p*100)) * time.Microsecond
}
