// Package selfscan scans /24s the way a careful scanner would and fails on every honeypot
// tell it knows (issue 20): shared literals between hosts, protocols of one host
// disagreeing, the network and broadcast addresses answering, flat or microsecond timing,
// and the published honeypot strings of peers.md. One sub-test per population: the mixed
// /24 of six personas, and a sparse /24 of each embedded persona alone.
package selfscan

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

const inner = "ICSNARE_SELFSCAN_INNER"

// avoid are the published honeypot identity strings (peers.md §2 tell 1: Conpot's
// defaults, the nmap documentation example, Snap7's default) and this project's own
// former ones.
var avoid = []string{"Technodrome", "Mouser Factory", "88111222", "IM151-8 PN/DP CPU", "Siemens, SIMATIC, S7-200",
	"CP 443-1 EX40", "Venus", "6ES7 315-2AG10-0AB0", "S C-X4U421302009", "SIMATIC 300(1)", "Boot Loader",
	"S7-200", "CP 443-1", "48217733", "CP443-Leitstand"}

// TestSelfScan scans each population in a network namespace of its own (so its sensor
// serves the standard ports and the scanners reach them as on a network): one sub-test
// per population, each re-running this test inside its namespace. -run selects
// populations as usual (TestSelfScan/m340).
func TestSelfScan(t *testing.T) {
	if os.Getenv(inner) == "1" {
		for _, pop := range populations {
			t.Run(pop.name, func(t *testing.T) { scan(t, pop) })
		}
		return
	}
	protocoltest.NeedRoot(t)
	ipCmd := protocoltest.NeedTool(t, "ip")
	for _, tool := range []string{"nmap", "snmpwalk"} {
		protocoltest.NeedTool(t, tool)
	}
	bin := filepath.Join(t.TempDir(), "icsnare")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/icsnare/icsnare/cmd/icsnare").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	self, _ := os.Executable()
	removeStaleNamespaces(t, ipCmd)
	start := time.Now()
	t.Cleanup(func() { t.Logf("self-scan of the selected populations: %v", time.Since(start).Round(time.Second)) })
	for _, pop := range populations {
		t.Run(pop.name, func(t *testing.T) {
			t.Parallel() // nmap waits on the network far more than it computes
			ns := fmt.Sprintf("icsnare-selfscan-%d-%s", os.Getpid(), pop.name)
			if out, err := exec.Command(ipCmd, "netns", "add", ns).CombinedOutput(); err != nil {
				t.Fatalf("ip netns add: %v: %s", err, out)
			}
			t.Cleanup(func() { exec.Command(ipCmd, "netns", "delete", ns).Run() })
			if out, err := exec.Command(ipCmd, "netns", "exec", ns, ipCmd, "link", "set", "lo", "up").CombinedOutput(); err != nil {
				t.Fatalf("lo up: %v: %s", err, out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ipCmd, "netns", "exec", ns, self, "-test.run", "^TestSelfScan$/^"+regexp.QuoteMeta(pop.name)+"$",
				"-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), inner+"=1", "ICSNARE_SELFSCAN_BIN="+bin)
			begin := time.Now()
			out, err := cmd.CombinedOutput()
			t.Logf("inside %s (%v):\n%s", ns, time.Since(begin).Round(time.Second), out)
			if err != nil {
				t.Fatalf("self-scan of %s failed: %v", pop.name, err)
			}
		})
	}
}

// host is one live address and what the scan learnt of it.
type host struct {
	ip      string
	persona string
	descr   string
}

// persona is what the scan knows of one embedded persona: how discovery recognises it,
// what nmap must name on its ports, which of its answers must differ between two hosts,
// and which protocols carry a latency model.
type persona struct {
	name  string
	match string // in the identity answer (SNMP sysDescr, or ident's answer)
	// ident, when set, replaces the SNMP sysDescr query in discovery (a persona without
	// SNMP).
	ident func(ip string) (string, bool)
	probe int // a TCP port the persona serves (the silence check and the start-up wait)
	// nmap: the ports (nmap -p syntax, open and closed ones) and scripts, and what the
	// report of each scanned host must match.
	ports, scripts string
	want           []string
	// distinct are values nmap's scripts report (one capture group each) that two hosts
	// of the persona never share: serials, names.
	distinct []string
	// intensity, when set, lowers nmap's --version-intensity (a service no probe names:
	// nmap would otherwise try every probe on it).
	intensity int
	walkMin   int      // SNMP walk of .1.3.6.1.2.1: at least this many values; 0: no SNMP
	addrTable bool     // ipAddrTable has the host's own address and the /24's mask
	pages     []string // web pages with host data: different on two hosts
	// agree checks one host's protocols against each other (nmap's report for its PLC
	// protocol); nil: the persona has one protocol of identity.
	agree func(t *testing.T, h host, report string, all *bytes.Buffer)
	// timing samples the protocols with a scan-cycle model on a host.
	timing []func(t *testing.T, ip string) (string, []time.Duration)
}

var personas = map[string]*persona{
	"default": {
		match: "CPU315-2 PN/DP", probe: 502,
		ports: "T:21,80,102,502,44818,U:161", scripts: "s7-info,modbus-discover,http-title,snmp-info",
		want: []string{`80/tcp\s+open\s+http\s+Siemens Simatic S7-300 PLC httpd`, `102/tcp\s+open\s+iso-tsap\s+Siemens S7 PLC`,
			`502/tcp\s+open\s+modbus\s+Modbus TCP`, `Module Type: CPU 315-2 PN/DP`, `Copyright: Original Siemens Equipment`,
			`21/tcp\s+closed`, `44818/tcp\s+closed`, `161/udp\s+open\s+snmp`},
		distinct: []string{`Serial Number: (.+)`, `System Name: (.+)`, `Plant Identification: (.+)`, `http-title: (.+)`},
		walkMin:  100, addrTable: true,
		pages: []string{"/Portal0000.htm", "/Identification.htm", "/DiagBuffer.htm", "/Communication.htm"},
		agree: agreeS7300,
		timing: []func(*testing.T, string) (string, []time.Duration){
			func(t *testing.T, ip string) (string, []time.Duration) {
				return "modbus", sample(t, ip, 502, modbusReq)
			},
			func(t *testing.T, ip string) (string, []time.Duration) { return "s7", sampleS7(t, ip, "0102") },
		},
	},
	"s7-1200": {
		match: "CPU 1214C", probe: 102,
		ports: "T:21,80,102,502,44818,U:161", scripts: "s7-info,http-title,snmp-info",
		want: []string{`102/tcp\s+open\s+iso-tsap\s+Siemens S7 PLC`, `Module Type: CPU 1214C DC/DC/DC`, `Module: 6ES7 214-1AG40-0XB0`,
			`502/tcp\s+closed`, `21/tcp\s+closed`, `44818/tcp\s+closed`, `http-title: SIMATIC 1200 Station`,
			`80/tcp\s+open\s+http\s+Siemens Simatic S7-1200 PLC httpd`, `161/udp\s+open\s+snmp`},
		distinct: []string{`Serial Number: (.+)`, `System Name: (.+)`, `Plant Identification: (.+)`},
		walkMin:  100, addrTable: true,
		pages: []string{"/Portal/Portal.mwsl"},
		agree: agreeS71200,
		timing: []func(*testing.T, string) (string, []time.Duration){
			func(t *testing.T, ip string) (string, []time.Duration) { return "s7", sampleS7(t, ip, "0100") },
		},
	},
	"m340": {
		match: "BMX P34 2020", probe: 502,
		ports: "T:21,80,102,502,44818,U:161", scripts: "modbus-discover,http-title,snmp-info",
		want: []string{`502/tcp\s+open\s+modbus\s+Modbus TCP`, `Device identification: Schneider Electric BMX P34 2020 v\d`,
			`21/tcp\s+open\s+ftp\s+VxWorks ftpd`, `80/tcp\s+open\s+http\s+Schneider-WEB`, `102/tcp\s+closed`, `44818/tcp\s+closed`,
			`161/udp\s+open\s+snmp`},
		distinct: []string{`Service Info: Host: (\S+)`, `http-title: (.+)`},
		walkMin:  100, addrTable: true,
		pages: []string{"/html/english/home/home.htm"},
		agree: agreeM340,
		timing: []func(*testing.T, string) (string, []time.Duration){
			func(t *testing.T, ip string) (string, []time.Duration) {
				return "modbus", sample(t, ip, 502, modbusReq)
			},
		},
	},
	"compactlogix": {
		match: "1769-L33ER", probe: 44818,
		ports: "T:21,80,102,502,44818,U:161", scripts: "enip-info,http-title,snmp-info",
		want: []string{`44818/tcp\s+open\s+EtherNet-IP-2`, `vendor: Rockwell Automation/Allen-Bradley \(1\)`, `productName: 1769-L33ER/A LOGIX5333ER`,
			`80/tcp\s+open\s+http\s+GoAhead-Webs`, `102/tcp\s+closed`, `502/tcp\s+closed`, `21/tcp\s+closed`, `161/udp\s+open\s+snmp`},
		distinct: []string{`serialNumber: (0x[0-9a-f]+)`, `Service Info: Host: (\S+)`},
		walkMin:  100, addrTable: true,
		pages: []string{"/index.html"},
		agree: agreeCompactLogix,
	},
	"bacnet-controller": {
		match: "ECLYPSE", probe: 80,
		ports: "T:80,102,502,U:161,47808", scripts: "bacnet-info,http-title,snmp-info",
		want: []string{`47808/udp\s+open\s+bacnet`, `Vendor Name: Distech Controls`, `Model Name: ECY-S1000`, `102/tcp\s+closed`,
			`502/tcp\s+closed`, `80/tcp\s+open\s+http\s+nginx`, `161/udp\s+open\s+snmp`},
		distinct: []string{`Object-identifier: (\d+)`, `Object Name: (.+)`},
		walkMin:  40,
		pages:    []string{"/index.html"},
	},
	"bmc": {
		match: "Supermicro", probe: 80,
		ports: "T:80,102,502,U:161,623", scripts: "ipmi-version,http-title,snmp-info",
		want: []string{`623/udp\s+open\s+asf-rmcp`, `ipmi-version:\s+\|\s+Version:\s+\|\s+IPMI-2\.0`, `80/tcp\s+open\s+http\s+ATEN HTTP Server`,
			`102/tcp\s+closed`, `502/tcp\s+closed`, `161/udp\s+open\s+snmp\s+SNMPv1 server; Super Micro Computer Inc\. SNMPv3 server`},
		distinct: []string{`Service Info: Host: (\S+)`, `http-title: (.+)`},
		walkMin:  40,
		pages:    []string{"/index.html"},
	},
	"tls350": {
		match: "IN-TANK INVENTORY", probe: 10001, ident: tankInventory, intensity: 1,
		ports: "T:80,102,502,10001", scripts: "",
		want: []string{`10001/tcp\s+open`, `80/tcp\s+closed`, `102/tcp\s+closed`, `502/tcp\s+closed`},
	},
}

func init() {
	for name, p := range personas {
		p.name = name
	}
}

// population is one /24 the scan runs on: a mix of personas (profile = weight) and the
// share of addresses that answer.
type population struct {
	name    string
	prefix  string
	mix     map[string]int
	density float64
	// nmapHosts: how many hosts of each persona nmap -sV scans.
	nmapHosts int
	// live: the bounds on the live addresses the density gives.
	minLive, maxLive int
}

var populations = func() []population {
	out := []population{{name: "mixed", prefix: "127.39.7", density: 0.5, nmapHosts: 1, minLive: 60, maxLive: 200,
		mix: map[string]int{"default": 3, "s7-1200": 1, "m340": 1, "compactlogix": 1, "bacnet-controller": 1, "bmc": 1}}}
	names := make([]string, 0, len(personas))
	for n := range personas {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		// A sparse /24 with a dark share: discovery is cheap, nmap scans two hosts.
		out = append(out, population{name: n, prefix: fmt.Sprintf("127.39.%d", 20+i), density: 0.3, nmapHosts: 2,
			minLive: 30, maxLive: 130, mix: map[string]int{n: 1}})
	}
	return out
}()

func scan(t *testing.T, pop population) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "icsnare.toml")
	var mix []string
	for _, n := range slices.Sorted(mapKeys(pop.mix)) {
		mix = append(mix, fmt.Sprintf("%q = %d", n, pop.mix[n]))
	}
	os.WriteFile(cfg, []byte(`sensor_id = "selfscan-`+pop.name+`"
seed = "selfscan-`+time.Now().Format("20060102")+`"
[[hosts]]
addresses = ["`+pop.prefix+`.0/24"]
profiles = { `+strings.Join(mix, ", ")+` }
density = `+strconv.FormatFloat(pop.density, 'f', -1, 64)+`
`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sensor := exec.CommandContext(ctx, os.Getenv("ICSNARE_SELFSCAN_BIN"), "run", "--config", cfg, "--state", filepath.Join(dir, "state"),
		"--user", "root", "--metrics", "off", "--events", filepath.Join(dir, "events.jsonl"))
	var log bytes.Buffer
	sensor.Stdout, sensor.Stderr = &log, &log
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		sensor.Wait()
		if t.Failed() {
			t.Logf("sensor log:\n%s", log.String())
		}
	}()
	start := time.Now()
	var members []*persona
	for n := range pop.mix {
		members = append(members, personas[n])
	}
	waitServing(t, pop.prefix, members)

	hosts := discover(t, pop.prefix, members)
	var all bytes.Buffer // every answer, for the avoid list
	byPersona := map[string][]host{}
	for _, h := range hosts {
		byPersona[h.persona] = append(byPersona[h.persona], h)
		all.WriteString(h.descr + "\n")
	}
	var counts []string
	for _, p := range slices.Sorted(mapKeys(pop.mix)) {
		counts = append(counts, fmt.Sprintf("%d %s", len(byPersona[p]), p))
	}
	t.Logf("%s: %d of 254 addresses answer: %s", pop.name, len(hosts), strings.Join(counts, ", "))
	if len(hosts) < pop.minLive || len(hosts) > pop.maxLive {
		t.Errorf("%d live hosts for density %v", len(hosts), pop.density)
	}
	for p := range pop.mix {
		if len(byPersona[p]) < 2 {
			t.Fatalf("fewer than two hosts of %s: %v", p, byPersona)
		}
	}
	if n := len(byPersona["unknown"]); n > 0 {
		t.Errorf("%d hosts of no known persona: %v", n, byPersona["unknown"])
	}
	silent(t, pop.prefix, hosts, members)

	// nmap -sV with the ICS scripts, one run over nmapHosts hosts of each persona (the
	// union of their ports and scripts): the service and the device as the real one is
	// named, its own ports open and the others closed (refused before the handshake, not
	// tcpwrapped).
	var targets []host
	tcp, udp, scripts := map[string]bool{}, map[string]bool{}, map[string]bool{}
	intensity := 9
	for _, p := range members {
		targets = append(targets, byPersona[p.name][:pop.nmapHosts]...)
		set := tcp // nmap's lists stay in the protocol last named
		for _, part := range strings.Split(p.ports, ",") {
			switch {
			case strings.HasPrefix(part, "T:"):
				set = tcp
			case strings.HasPrefix(part, "U:"):
				set = udp
			}
			set[strings.TrimPrefix(strings.TrimPrefix(part, "T:"), "U:")] = true
		}
		for _, sc := range strings.Split(p.scripts, ",") {
			if sc != "" {
				scripts[sc] = true
			}
		}
		if p.intensity > 0 {
			intensity = min(intensity, p.intensity)
		}
	}
	args := []string{"-Pn", "-n", "-sT", "-sV", "-p", portSpec(tcp, udp)}
	if intensity < 9 {
		args = append(args, "--version-intensity", strconv.Itoa(intensity))
	}
	if len(udp) > 0 {
		args = append(args, "-sU")
	}
	if len(scripts) > 0 {
		args = append(args, "--script", strings.Join(slices.Sorted(mapKeys(scripts)), ","))
	}
	for _, h := range targets {
		args = append(args, h.ip)
	}
	nm, err := protocoltest.Run(t, 5*time.Minute, "nmap", args...)
	if err != nil {
		t.Fatalf("nmap: %v\n%s", err, nm)
	}
	all.WriteString(nm)
	reports := splitNmap(nm)
	for _, h := range targets {
		p := personas[h.persona]
		r := reports[h.ip]
		t.Logf("nmap -sV %s (%s):\n%s", h.ip, p.name, strings.TrimSpace(r))
		for _, want := range p.want {
			if !regexp.MustCompile(want).MatchString(r) {
				t.Errorf("%s (%s): nmap lacks %q", h.ip, p.name, want)
			}
		}
		if strings.Contains(r, "tcpwrapped") {
			t.Errorf("%s (%s): a port nmap calls tcpwrapped", h.ip, p.name)
		}
		if p.agree != nil {
			p.agree(t, h, r, &all)
		}
	}
	// What nmap's scripts show of two hosts of one persona: no serial or name alike.
	for _, p := range members {
		if pop.nmapHosts < 2 {
			break
		}
		a, b := byPersona[p.name][0], byPersona[p.name][1]
		for _, d := range p.distinct {
			re := regexp.MustCompile(d)
			x, y := re.FindStringSubmatch(reports[a.ip]), re.FindStringSubmatch(reports[b.ip])
			switch {
			case x == nil || y == nil:
				t.Errorf("%s: nmap's report of %s or %s lacks %q", p.name, a.ip, b.ip, d)
			case strings.TrimSpace(x[1]) == strings.TrimSpace(y[1]):
				t.Errorf("%s: nmap shows %q on both %s and %s", p.name, x[0], a.ip, b.ip)
			}
		}
	}

	for _, p := range members {
		a, b := byPersona[p.name][0], byPersona[p.name][1]
		// SNMP walks of two hosts: no distinctive value alike on both; the host's own
		// address in ipAddrTable.
		if p.walkMin > 0 {
			w0, w1 := walk(t, a.ip), walk(t, b.ip)
			all.WriteString(fmt.Sprint(w0, w1))
			t.Logf("SNMP walk of %s: %d and %d values", p.name, len(w0), len(w1))
			constants := sharedValues(t, p.name)
			for oid, v := range w0 {
				_, val, _ := strings.Cut(v, ": ")
				if w1[oid] == v && distinctive(v) && !constants[strings.Trim(val, `"`)] {
					t.Errorf("%s: shared literal: %s = %s on %s and %s", p.name, oid, v, a.ip, b.ip)
				}
			}
			if len(w0) < p.walkMin {
				t.Errorf("SNMP walk of %s (%s) has %d values, want %d or more", a.ip, p.name, len(w0), p.walkMin)
			}
			if p.addrTable {
				if v := w0[".1.3.6.1.2.1.4.20.1.1."+a.ip]; v != "IpAddress: "+a.ip {
					t.Errorf("%s (%s): ipAdEntAddr.%s = %q", a.ip, p.name, a.ip, v)
				}
				if v := w0[".1.3.6.1.2.1.4.20.1.3."+a.ip]; v != "IpAddress: 255.255.255.0" {
					t.Errorf("%s (%s): ipAdEntNetMask = %q, want the /24's", a.ip, p.name, v)
				}
			}
		}
		// Web pages: every page with host data differs between two hosts.
		for _, pg := range p.pages {
			x, y := get(t, a.ip, pg), get(t, b.ip, pg)
			all.WriteString(x + y)
			if x == y {
				t.Errorf("%s: %s is the same on %s and %s", p.name, pg, a.ip, b.ip)
			}
		}
		// A persona without SNMP or web: its identity answer differs.
		if p.ident != nil && a.descr == b.descr {
			t.Errorf("%s: the identity answer is the same on %s and %s:\n%s", p.name, a.ip, b.ip, a.descr)
		}
		// Timing: milliseconds with spread.
		for _, h := range []host{a, b} {
			for _, f := range p.timing {
				proto, s := f(t, h.ip)
				t.Logf("%s (%s) latency: %s median %v p10-p90 %v-%v", h.ip, p.name, proto, pct(s, 50), pct(s, 10), pct(s, 90))
				if pct(s, 50) < 500*time.Microsecond {
					t.Errorf("%s (%s) %s: median %v: a PLC takes milliseconds", h.ip, p.name, proto, pct(s, 50))
				}
				if pct(s, 90)-pct(s, 10) < 300*time.Microsecond {
					t.Errorf("%s (%s) %s: flat timing, p10 %v p90 %v", h.ip, p.name, proto, pct(s, 10), pct(s, 90))
				}
			}
		}
	}

	for _, s := range avoid {
		if strings.Contains(all.String(), s) {
			t.Errorf("known honeypot string %q in the answers", s)
		}
	}
	t.Logf("%s: scanned in %v", pop.name, time.Since(start).Round(time.Second))
}

// portSpec is nmap's -p list of the TCP and UDP ports.
func portSpec(tcp, udp map[string]bool) string {
	byNum := func(m map[string]bool) []string {
		out := slices.Collect(mapKeys(m))
		slices.SortFunc(out, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		return out
	}
	spec := "T:" + strings.Join(byNum(tcp), ",")
	if len(udp) > 0 {
		spec += ",U:" + strings.Join(byNum(udp), ",")
	}
	return spec
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// removeStaleNamespaces deletes the namespaces of self-scans whose process is gone (a run
// killed before its cleanup), so they do not pile up on a CI machine.
func removeStaleNamespaces(t *testing.T, ipCmd string) {
	names, _ := filepath.Glob("/run/netns/icsnare-selfscan-*")
	for _, path := range names {
		pid, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(path), "icsnare-selfscan-"), "-")
		if _, err := strconv.Atoi(pid); !ok || err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // still running (its own cleanup removes it)
		}
		if out, err := exec.Command(ipCmd, "netns", "delete", filepath.Base(path)).CombinedOutput(); err != nil {
			t.Logf("stale namespace %s: %v: %s", filepath.Base(path), err, out)
		} else {
			t.Logf("removed the stale namespace %s", filepath.Base(path))
		}
	}
}

// discover asks every address of the /24 for its identity (SNMP sysDescr, or the
// persona's own ident) and sorts the live ones by persona.
func discover(t *testing.T, prefix string, members []*persona) []host {
	var idents []func(string) (string, bool)
	snmp := false
	for _, p := range members {
		if p.ident != nil {
			idents = append(idents, p.ident)
		} else {
			snmp = true
		}
	}
	if snmp {
		idents = append(idents, func(ip string) (string, bool) { return snmpGet(ip, "1.3.6.1.2.1.1.1.0") })
	}
	var mu sync.Mutex
	var out []host
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 1; i < 255; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(ip string) {
			defer wg.Done()
			defer func() { <-sem }()
			for _, id := range idents {
				v, ok := id(ip)
				if !ok {
					continue
				}
				h := host{ip: ip, descr: v, persona: "unknown"}
				for _, p := range members {
					if strings.Contains(v, p.match) {
						h.persona = p.name
					}
				}
				mu.Lock()
				out = append(out, h)
				mu.Unlock()
				return
			}
		}(fmt.Sprintf("%s.%d", prefix, i))
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return ipLess(out[i].ip, out[j].ip) })
	return out
}

// tankInventory sends a TLS-350's in-tank inventory request (I20100) and returns the
// report.
func tankInventory(ip string) (string, bool) {
	c, err := net.DialTimeout("tcp", ip+":10001", 1500*time.Millisecond)
	if err != nil {
		return "", false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("\x01I20100\n")); err != nil {
		return "", false
	}
	var b bytes.Buffer
	io.Copy(&b, io.LimitReader(c, 4096)) // the console answers and waits; the deadline ends the read
	return b.String(), b.Len() > 0
}

func ipLess(a, b string) bool {
	var x, y int
	fmt.Sscanf(a[strings.LastIndexByte(a, '.')+1:], "%d", &x)
	fmt.Sscanf(b[strings.LastIndexByte(b, '.')+1:], "%d", &y)
	return x < y
}

func snmpGet(ip, oid string) (string, bool) {
	g := &gosnmp.GoSNMP{Target: ip, Port: 161, Community: "public", Version: gosnmp.Version2c, Timeout: 1500 * time.Millisecond, Retries: 1}
	if err := g.Connect(); err != nil {
		return "", false
	}
	defer g.Conn.Close()
	r, err := g.Get([]string{oid})
	if err != nil || len(r.Variables) == 0 {
		return "", false
	}
	b, ok := r.Variables[0].Value.([]byte)
	return string(b), ok
}

// silent checks that the network and broadcast addresses and a dark address answer
// nothing, on TCP (each member's own port) and on SNMP.
func silent(t *testing.T, prefix string, live []host, members []*persona) {
	isLive := map[string]bool{}
	for _, h := range live {
		isLive[h.ip] = true
	}
	var dark string
	for i := 1; i < 255 && dark == ""; i++ {
		if ip := fmt.Sprintf("%s.%d", prefix, i); !isLive[ip] {
			dark = ip
		}
	}
	if dark == "" {
		t.Errorf("no dark address in %s.0/24", prefix)
	}
	for _, ip := range []string{prefix + ".0", prefix + ".255", dark} {
		if ip == "" {
			continue
		}
		if _, ok := snmpGet(ip, "1.3.6.1.2.1.1.5.0"); ok {
			t.Errorf("%s answers SNMP", ip)
		}
		for _, p := range members {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", ip, p.probe), 2*time.Second)
			if err != nil {
				continue
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write(modbusReq)
			if n, _ := c.Read(make([]byte, 64)); n > 0 {
				t.Errorf("%s answers on %d/tcp", ip, p.probe)
			}
			c.Close()
		}
	}
}

// agreeS7300 checks that S7 (from nmap), SNMP, HTTP and Modbus name the same CPU and
// firmware.
func agreeS7300(t *testing.T, h host, nmap string, all *bytes.Buffer) {
	m := regexp.MustCompile(`Version: (\d+\.\d+\.\d+)`).FindStringSubmatch(nmap)
	if m == nil {
		t.Errorf("%s: s7-info shows no version", h.ip)
		return
	}
	fw := "V" + m[1]
	if !strings.Contains(h.descr, "FW: "+fw) {
		t.Errorf("%s: S7 says %s, SNMP sysDescr %q", h.ip, fw, h.descr)
	}
	page := get(t, h.ip, "/Portal0000.htm")
	all.WriteString(page)
	if !strings.Contains(page, fw) || !strings.Contains(page, `<span class="mode">RUN</span>`) {
		t.Errorf("%s: start page lacks firmware %s or RUN", h.ip, fw)
	}
	name, _ := snmpGet(h.ip, "1.3.6.1.2.1.1.5.0")
	if !strings.Contains(nmap, "http-title: "+name+" - Start page") {
		t.Errorf("%s: web title does not name sysName %q", h.ip, name)
	}
	id := modbusIdent(t, h.ip)
	all.WriteString(strings.Join(id, "\n"))
	if len(id) < 3 || id[0] != "Siemens" || id[1] != "6ES7 315-2EH14-0AB0" || id[2] != fw {
		t.Errorf("%s: Modbus device identification %q, want Siemens 6ES7 315-2EH14-0AB0 %s", h.ip, id, fw)
	}
}

// splitNmap cuts nmap's output into one report per address.
func splitNmap(out string) map[string]string {
	m := map[string]string{}
	parts := strings.Split(out, "Nmap scan report for ")
	for _, p := range parts[1:] {
		ip, _, _ := strings.Cut(p, "\n")
		m[strings.TrimSpace(ip)] = p
	}
	return m
}

func walk(t *testing.T, ip string) map[string]string {
	out, err := protocoltest.Run(t, time.Minute, "snmpwalk", "-v2c", "-c", "public", "-On", "-t", "2", "-r", "1", ip, ".1.3.6.1.2.1")
	if err != nil {
		t.Fatalf("snmpwalk %s: %v\n%s", ip, err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		oid, v, ok := strings.Cut(l, " = ")
		if ok {
			m[oid] = v
		}
	}
	return m
}

// distinctive reports whether a walk value alike on two hosts would be a signature: long
// strings, and numbers that are neither small nor round.
func distinctive(v string) bool {
	typ, val, _ := strings.Cut(v, ": ")
	val = strings.Trim(val, `"`)
	switch typ {
	case "STRING", "Hex-STRING":
		return len(val) >= 6
	case "Counter32", "Counter64", "Gauge32", "INTEGER":
		var n int64
		if _, err := fmt.Sscanf(val, "%d", &n); err != nil {
			return false
		}
		return n >= 10000 && n%1000 != 0
	}
	return false
}

// sharedValues evaluates the persona's databus keys on many seeds and returns the values two
// hosts may show alike: those of constant="true" keys (what every real unit of the model
// shows) and those of keys drawn per host from a pool (a site's few locations, say: two
// hosts draw the same one by chance, 1 in 5 for a pool of five). A key with one value on
// every seed is a literal every host shares, and its value stays a tell.
func sharedValues(t *testing.T, persona string) map[string]bool {
	p, err := profiles.Open(persona)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	drawn := map[string]map[string]bool{} // key → its values over the seeds
	for s := uint64(1); s < 200; s++ {
		db := p.Schema.NewDatabus(profiles.EngineEnv{Seed: s * 0x9e3779b97f4a7c15})
		for _, k := range p.Schema.Keys() {
			spec, _ := p.Schema.Spec(k)
			v, err := db.GetString(k)
			if err != nil {
				continue
			}
			if spec.Constant {
				out[v] = true
				continue
			}
			if drawn[k] == nil {
				drawn[k] = map[string]bool{}
			}
			drawn[k][v] = true
		}
	}
	for _, vals := range drawn {
		if len(vals) > 1 {
			for v := range vals {
				out[v] = true
			}
		}
	}
	return out
}

func get(t *testing.T, ip, path string) string {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ip + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", ip, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b)
}

var modbusReq = []byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 8} // read 8 holding registers

// modbusIdent reads the basic device identification objects (FC 43/14).
func modbusIdent(t *testing.T, ip string) []string {
	c, err := net.DialTimeout("tcp", ip+":502", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{0, 7, 0, 0, 0, 5, 1, 0x2b, 0x0e, 1, 0})
	b, err := readMBAP(c)
	if err != nil || len(b) < 7+7 || b[7] != 0x2b {
		t.Fatalf("%s: FC43: % x %v", ip, b, err)
	}
	var objs []string
	p := b[7+7:]
	n := int(b[7+6])
	for range n {
		if len(p) < 2 || len(p) < 2+int(p[1]) {
			break
		}
		objs = append(objs, string(p[2:2+int(p[1])]))
		p = p[2+int(p[1]):]
	}
	return objs
}

func readMBAP(c net.Conn) ([]byte, error) {
	h := make([]byte, 7)
	if _, err := io.ReadFull(c, h); err != nil {
		return nil, err
	}
	rest := make([]byte, int(binary.BigEndian.Uint16(h[4:]))-1)
	if _, err := io.ReadFull(c, rest); err != nil {
		return nil, err
	}
	return append(h, rest...), nil
}

// sample times 40 Modbus requests on one connection, one at a time.
func sample(t *testing.T, ip string, port int, req []byte) []time.Duration {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", ip, port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []time.Duration
	for range 40 {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		c.Write(req)
		if _, err := readMBAP(c); err != nil {
			t.Fatalf("%s: modbus: %v", ip, err)
		}
		out = append(out, time.Since(start))
		time.Sleep(3 * time.Millisecond)
	}
	return out
}

// sampleS7 times 40 SZL reads (module identification, as nmap's s7-info asks) on a
// connection to the called TSAP tsap (hex: "0102" rack 0 slot 2).
func sampleS7(t *testing.T, ip, tsap string) []time.Duration {
	c, err := net.DialTimeout("tcp", ip+":102", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x := func(hexs string) ([]byte, time.Duration) {
		b, err := hex.DecodeString(strings.ReplaceAll(hexs, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		c.Write(b)
		h := make([]byte, 4)
		if _, err := io.ReadFull(c, h); err != nil {
			t.Fatalf("%s: s7: %v", ip, err)
		}
		rest := make([]byte, int(binary.BigEndian.Uint16(h[2:]))-4)
		if _, err := io.ReadFull(c, rest); err != nil {
			t.Fatalf("%s: s7: %v", ip, err)
		}
		return append(h, rest...), time.Since(start)
	}
	x("0300001611e00000000100c0010ac1020100c202" + tsap)
	x("0300001902f08032010000000100080000f0000001000101e0")
	var out []time.Duration
	for range 40 {
		r, d := x("0300002102f080320700000000000800080001120411440100ff09000400110001")
		if len(r) < 20 {
			t.Fatalf("%s: SZL reply % x", ip, r)
		}
		out = append(out, d)
		time.Sleep(3 * time.Millisecond)
	}
	return out
}

func pct(s []time.Duration, p int) time.Duration {
	c := slices.Clone(s)
	slices.Sort(c)
	return c[min(len(c)-1, len(c)*p/100)].Round(10 * time.Microsecond)
}

// waitServing waits until the sensor has bound its hosts' ports: some host of the /24
// accepts a connection on a member's port.
func waitServing(t *testing.T, prefix string, members []*persona) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i := 1; i < 255; i += 17 {
			for _, p := range members {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("%s.%d:%d", prefix, i, p.probe), 300*time.Millisecond)
				if err == nil {
					c.Close()
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the sensor did not start serving")
}

// agreeS71200 checks that the S7-1200 names the same firmware in SNMP as in S7 (from
// nmap's s7-info) and on its web page.
func agreeS71200(t *testing.T, h host, report string, all *bytes.Buffer) {
	m := regexp.MustCompile(`Version: (\d+\.\d+\.\d+)`).FindStringSubmatch(report)
	if m == nil || !strings.Contains(h.descr, "FW: V"+m[1]) {
		t.Errorf("%s: s7-info version %v, SNMP sysDescr %q", h.ip, m, h.descr)
		return
	}
	page := get(t, h.ip, "/Portal/Portal.mwsl")
	all.WriteString(page)
	if !strings.Contains(page, "V"+m[1]) || !strings.Contains(page, `<span class="mode">RUN</span>`) {
		t.Errorf("%s: start page lacks firmware V%s or RUN", h.ip, m[1])
	}
}

// agreeM340 checks that the M340 names the same firmware in Modbus (nmap's
// modbus-discover), SNMP and on its home page.
func agreeM340(t *testing.T, h host, report string, all *bytes.Buffer) {
	m := regexp.MustCompile(`BMX P34 2020 v(\d+\.\d+)`).FindStringSubmatch(report)
	if m == nil || !strings.Contains(h.descr, "V"+m[1]) {
		t.Errorf("%s: Modbus identification %v, SNMP sysDescr %q", h.ip, m, h.descr)
		return
	}
	page := get(t, h.ip, "/html/english/home/home.htm")
	all.WriteString(page)
	if !strings.Contains(page, m[1]) {
		t.Errorf("%s: home page lacks firmware %s", h.ip, m[1])
	}
}

// agreeCompactLogix checks that the CompactLogix names the same revision and serial in
// EtherNet/IP (nmap's enip-info), SNMP and on its home page.
func agreeCompactLogix(t *testing.T, h host, report string, all *bytes.Buffer) {
	page := get(t, h.ip, "/index.html")
	all.WriteString(page)
	if m := regexp.MustCompile(`revision: (\d+\.\d+)`).FindStringSubmatch(report); m == nil || !strings.Contains(h.descr, "Rev "+m[1]) {
		t.Errorf("%s: enip-info revision %v, SNMP sysDescr %q", h.ip, m, h.descr)
	} else if !strings.Contains(page, m[1]) {
		t.Errorf("%s: home page lacks revision %s", h.ip, m[1])
	}
	m := regexp.MustCompile(`serialNumber: 0x([0-9a-f]+)`).FindStringSubmatch(report)
	var serial uint64
	if m != nil {
		serial, _ = strconv.ParseUint(m[1], 16, 32)
	}
	if m == nil || !strings.Contains(page, fmt.Sprintf("%08X", serial)) {
		t.Errorf("%s: enip-info serial %v is not the web page's", h.ip, m)
	}
}
