// Package selfscan scans a /24 of mixed personas the way a careful scanner would and fails
// on every honeypot tell it knows (issue 20): shared literals between hosts, protocols of
// one host disagreeing, the network and broadcast addresses answering, flat or
// microsecond timing, and the published honeypot strings of peers.md.
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

const (
	prefix = "127.39.7" // a /24 on the loopback of the scan's own network namespace
	inner  = "ICSNARE_SELFSCAN_INNER"
)

// avoid are the published honeypot identity strings (peers.md §2 tell 1: Conpot's
// defaults, the nmap documentation example, Snap7's default) and this project's own
// former ones.
var avoid = []string{"Technodrome", "Mouser Factory", "88111222", "IM151-8 PN/DP CPU", "Siemens, SIMATIC, S7-200",
	"CP 443-1 EX40", "Venus", "6ES7 315-2AG10-0AB0", "S C-X4U421302009", "SIMATIC 300(1)", "Boot Loader",
	"S7-200", "CP 443-1", "48217733", "CP443-Leitstand"}

// TestSelfScan creates a network namespace, re-runs itself inside it (so the sensor serves
// the standard ports and the scanners reach them as on a network) and removes it.
func TestSelfScan(t *testing.T) {
	if os.Getenv(inner) == "1" {
		scan(t)
		return
	}
	protocoltest.NeedRoot(t)
	ipCmd := protocoltest.NeedTool(t, "ip")
	for _, tool := range []string{"nmap", "snmpwalk"} {
		protocoltest.NeedTool(t, tool)
	}
	ns := fmt.Sprintf("icsnare-selfscan-%d", os.Getpid())
	if out, err := exec.Command(ipCmd, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ipCmd, "netns", "delete", ns).Run() })
	if out, err := exec.Command(ipCmd, "netns", "exec", ns, ipCmd, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "icsnare")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/icsnare/icsnare/cmd/icsnare").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	self, _ := os.Executable()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipCmd, "netns", "exec", ns, self, "-test.run", "^TestSelfScan$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inner+"=1", "ICSNARE_SELFSCAN_BIN="+bin)
	out, err := cmd.CombinedOutput()
	t.Logf("inside %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("self-scan failed: %v", err)
	}
}

// host is one live address and what the scan learnt of it.
type host struct {
	ip      string
	persona string
	descr   string
}

func scan(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "icsnare.toml")
	os.WriteFile(cfg, []byte(`sensor_id = "selfscan"
seed = "selfscan-`+time.Now().Format("20060102")+`"
[[hosts]]
addresses = ["`+prefix+`.0/24"]
profiles = { default = 3, "s7-1200" = 1, m340 = 1, compactlogix = 1, "bacnet-controller" = 1, bmc = 1 }
density = 0.5
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
	waitTCP(t, 80)

	hosts := discover(t)
	var all bytes.Buffer // every answer, for the avoid list
	byPersona := map[string][]host{}
	for _, h := range hosts {
		byPersona[h.persona] = append(byPersona[h.persona], h)
		all.WriteString(h.descr + "\n")
	}
	t.Logf("%d of 254 addresses answer: %d default, %d s7-1200, %d m340, %d compactlogix, %d bacnet-controller, %d bmc", len(hosts),
		len(byPersona["default"]), len(byPersona["s7-1200"]), len(byPersona["m340"]), len(byPersona["compactlogix"]),
		len(byPersona["bacnet-controller"]), len(byPersona["bmc"]))
	if len(hosts) < 60 || len(hosts) > 200 {
		t.Errorf("%d live hosts for density 0.5", len(hosts))
	}
	for _, p := range []string{"default", "s7-1200", "m340", "compactlogix", "bacnet-controller", "bmc"} {
		if len(byPersona[p]) < 2 {
			t.Fatalf("the mix has fewer than two hosts of %s: %v", p, byPersona)
		}
	}
	if n := len(byPersona["unknown"]); n > 0 {
		t.Errorf("%d hosts of no known persona: %v", n, byPersona["unknown"])
	}
	silent(t, hosts)
	d := byPersona["default"][:2]

	// nmap -sV with the ICS scripts: the service and the device as the real one is named.
	s12, m340, clx := byPersona["s7-1200"][0], byPersona["m340"][0], byPersona["compactlogix"][0]
	targets := []string{d[0].ip, d[1].ip, byPersona["bacnet-controller"][0].ip, s12.ip, m340.ip, clx.ip}
	nm, err := protocoltest.Run(t, 4*time.Minute, "nmap", append([]string{"-Pn", "-n", "-sT", "-sU", "-sV",
		"-p", "T:21,80,102,502,44818,U:161,47808", "--script", "s7-info,modbus-discover,http-title,snmp-info,bacnet-info,enip-info"}, targets...)...)
	if err != nil {
		t.Fatalf("nmap: %v\n%s", err, nm)
	}
	all.WriteString(nm)
	reports := splitNmap(nm)
	for _, h := range d {
		r := reports[h.ip]
		for _, want := range []string{`80/tcp\s+open\s+http\s+Siemens Simatic S7-300 PLC httpd`, `102/tcp\s+open\s+iso-tsap\s+Siemens S7 PLC`,
			`502/tcp\s+open\s+modbus\s+Modbus TCP`, `Module Type: CPU 315-2 PN/DP`, `Copyright: Original Siemens Equipment`} {
			if !regexp.MustCompile(want).MatchString(r) {
				t.Errorf("%s: nmap lacks %q:\n%s", h.ip, want, r)
			}
		}
		if strings.Contains(r, "SNMPv3") {
			t.Errorf("%s: nmap sees an SNMPv3 engine; the CPU has none:\n%s", h.ip, r)
		}
		agree(t, h, r, &all)
	}
	if r := reports[targets[2]]; !strings.Contains(r, "ECY-S1000") {
		t.Errorf("%s: bacnet-info does not name the ECLYPSE:\n%s", targets[2], r)
	}
	// Each persona as nmap names the real device, its own ports open and the others closed
	// (refused before the handshake, not tcpwrapped).
	for _, c := range []struct {
		h    host
		want []string
	}{
		{byPersona["bacnet-controller"][0], []string{`47808/udp\s+open\s+bacnet`, `102/tcp\s+closed`, `502/tcp\s+closed`, `21/tcp\s+closed`, `44818/tcp\s+closed`}},
		{s12, []string{`102/tcp\s+open\s+iso-tsap\s+Siemens S7 PLC`, `Module Type: CPU 1214C DC/DC/DC`, `Module: 6ES7 214-1AG40-0XB0`,
			`502/tcp\s+closed`, `21/tcp\s+closed`, `44818/tcp\s+closed`, `http-title: SIMATIC 1200 Station`}},
		{m340, []string{`502/tcp\s+open\s+modbus\s+Modbus TCP`, `Device identification: Schneider Electric BMX P34 2020 v\d`,
			`21/tcp\s+open\s+ftp\s+VxWorks ftpd`, `80/tcp\s+open\s+http\s+Schneider-WEB`, `102/tcp\s+closed`, `44818/tcp\s+closed`}},
		{clx, []string{`44818/tcp\s+open\s+EtherNet-IP-2`, `vendor: Rockwell Automation/Allen-Bradley \(1\)`, `productName: 1769-L33ER/A LOGIX5333ER`,
			`80/tcp\s+open\s+http\s+GoAhead-Webs`, `102/tcp\s+closed`, `502/tcp\s+closed`, `21/tcp\s+closed`}},
	} {
		r := reports[c.h.ip]
		for _, want := range c.want {
			if !regexp.MustCompile(want).MatchString(r) {
				t.Errorf("%s (%s): nmap lacks %q:\n%s", c.h.ip, c.h.persona, want, r)
			}
		}
		if strings.Contains(r, "tcpwrapped") {
			t.Errorf("%s (%s): a port nmap calls tcpwrapped:\n%s", c.h.ip, c.h.persona, r)
		}
	}
	agreeOthers(t, s12, m340, clx, reports)

	// SNMP walks of two hosts of each PLC persona: no distinctive value alike on both; the
	// host's own address in ipAddrTable.
	for _, p := range []string{"default", "s7-1200", "m340", "compactlogix"} {
		a, b := byPersona[p][0], byPersona[p][1]
		w0, w1 := walk(t, a.ip), walk(t, b.ip)
		all.WriteString(fmt.Sprint(w0, w1))
		t.Logf("SNMP walk of %s: %d and %d values", p, len(w0), len(w1))
		constants := constantValues(t, p)
		for oid, v := range w0 {
			_, val, _ := strings.Cut(v, ": ")
			if w1[oid] == v && distinctive(v) && !constants[strings.Trim(val, `"`)] {
				t.Errorf("%s: shared literal: %s = %s on %s and %s", p, oid, v, a.ip, b.ip)
			}
		}
		if len(w0) < 100 { // system, interfaces, ip with ipAddrTable, icmp, tcp, udp, snmp
			t.Errorf("SNMP walk of %s (%s) has %d values", a.ip, p, len(w0))
		}
		if v := w0[".1.3.6.1.2.1.4.20.1.1."+a.ip]; v != "IpAddress: "+a.ip {
			t.Errorf("%s (%s): ipAdEntAddr.%s = %q", a.ip, p, a.ip, v)
		}
		if v := w0[".1.3.6.1.2.1.4.20.1.3."+a.ip]; v != "IpAddress: 255.255.255.0" {
			t.Errorf("%s (%s): ipAdEntNetMask = %q, want the /24's", a.ip, p, v)
		}
	}

	// Web pages: every page with host data differs between two hosts.
	for _, pg := range []string{"/Portal0000.htm", "/Identification.htm", "/DiagBuffer.htm", "/Communication.htm"} {
		a, b := get(t, d[0].ip, pg), get(t, d[1].ip, pg)
		all.WriteString(a + b)
		if a == b {
			t.Errorf("%s is the same on %s and %s", pg, d[0].ip, d[1].ip)
		}
	}

	// Timing: milliseconds with spread, each host its own.
	var med [2]time.Duration
	for i, h := range d {
		mb := sample(t, h.ip, 502, modbusReq)
		s7 := sampleS7(t, h.ip, "0102")
		t.Logf("%s latency: Modbus median %v p10-p90 %v-%v; S7 median %v p10-p90 %v-%v", h.ip,
			pct(mb, 50), pct(mb, 10), pct(mb, 90), pct(s7, 50), pct(s7, 10), pct(s7, 90))
		for name, s := range map[string][]time.Duration{"modbus": mb, "s7": s7} {
			if pct(s, 50) < 500*time.Microsecond {
				t.Errorf("%s %s: median %v: a PLC takes milliseconds", h.ip, name, pct(s, 50))
			}
			if pct(s, 90)-pct(s, 10) < 300*time.Microsecond {
				t.Errorf("%s %s: flat timing, p10 %v p90 %v", h.ip, name, pct(s, 10), pct(s, 90))
			}
		}
		med[i] = pct(s7, 50)
	}
	// The other PLC personas' own protocol: S7 of an S7-1200 (rack 0 slot 0), Modbus of an
	// M340; EtherNet/IP is answered by the stack without a scan-cycle model.
	for _, c := range []struct {
		h    host
		name string
		s    func() []time.Duration
	}{
		{byPersona["s7-1200"][1], "s7", func() []time.Duration { return sampleS7(t, byPersona["s7-1200"][1].ip, "0100") }},
		{byPersona["m340"][1], "modbus", func() []time.Duration { return sample(t, byPersona["m340"][1].ip, 502, modbusReq) }},
	} {
		x := c.s()
		t.Logf("%s (%s) latency: %s median %v p10-p90 %v-%v", c.h.ip, c.h.persona, c.name, pct(x, 50), pct(x, 10), pct(x, 90))
		if pct(x, 50) < 500*time.Microsecond || pct(x, 90)-pct(x, 10) < 300*time.Microsecond {
			t.Errorf("%s (%s) %s: median %v p10 %v p90 %v: flat or microsecond timing", c.h.ip, c.h.persona, c.name, pct(x, 50), pct(x, 10), pct(x, 90))
		}
	}
	if med[0].Round(50*time.Microsecond) == med[1].Round(50*time.Microsecond) {
		t.Logf("note: both hosts' S7 medians round to %v", med[0])
	}

	for _, s := range avoid {
		if strings.Contains(all.String(), s) {
			t.Errorf("known honeypot string %q in the answers", s)
		}
	}
}

// discover asks every address of the /24 for sysDescr and sorts the live ones by persona.
func discover(t *testing.T) []host {
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
			v, ok := snmpGet(ip, "1.3.6.1.2.1.1.1.0")
			if !ok {
				return
			}
			h := host{ip: ip, descr: v}
			switch {
			case strings.Contains(v, "CPU315-2 PN/DP"):
				h.persona = "default"
			case strings.Contains(v, "ECLYPSE"):
				h.persona = "bacnet-controller"
			case strings.Contains(v, "Supermicro"):
				h.persona = "bmc"
			case strings.Contains(v, "CPU 1214C"):
				h.persona = "s7-1200"
			case strings.Contains(v, "BMX P34 2020"):
				h.persona = "m340"
			case strings.Contains(v, "1769-L33ER"):
				h.persona = "compactlogix"
			default:
				h.persona = "unknown"
			}
			mu.Lock()
			out = append(out, h)
			mu.Unlock()
		}(fmt.Sprintf("%s.%d", prefix, i))
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return ipLess(out[i].ip, out[j].ip) })
	return out
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

// silent checks that the network and broadcast addresses and the dark addresses answer
// nothing, on TCP and on SNMP.
func silent(t *testing.T, live []host) {
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
	for _, ip := range []string{prefix + ".0", prefix + ".255", dark} {
		if ip == "" {
			continue
		}
		if _, ok := snmpGet(ip, "1.3.6.1.2.1.1.5.0"); ok {
			t.Errorf("%s answers SNMP", ip)
		}
		c, err := net.DialTimeout("tcp", ip+":502", 2*time.Second)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(modbusReq)
		if n, _ := c.Read(make([]byte, 64)); n > 0 {
			t.Errorf("%s answers Modbus", ip)
		}
		c.Close()
	}
}

// agree checks that S7 (from nmap), SNMP, HTTP and Modbus name the same CPU and firmware.
func agree(t *testing.T, h host, nmap string, all *bytes.Buffer) {
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

// constantValues evaluates the persona's constant="true" keys on many seeds: the values a
// real unit of that model may show alike.
func constantValues(t *testing.T, persona string) map[string]bool {
	p, err := profiles.Open(persona)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for s := uint64(1); s < 200; s++ {
		db := p.Schema.NewDatabus(profiles.EngineEnv{Seed: s * 0x9e3779b97f4a7c15})
		for _, k := range p.Schema.Keys() {
			if spec, _ := p.Schema.Spec(k); spec.Constant {
				if v, err := db.GetString(k); err == nil {
					out[v] = true
				}
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

func waitTCP(t *testing.T, port int) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("%s.1:%d", prefix, port), 500*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the sensor did not start serving")
}

// agreeOthers checks that the S7-1200, M340 and CompactLogix hosts name the same firmware in
// SNMP as in their PLC protocol (from nmap's scripts) and on their web page.
func agreeOthers(t *testing.T, s12, m340, clx host, reports map[string]string) {
	if m := regexp.MustCompile(`Version: (\d+\.\d+\.\d+)`).FindStringSubmatch(reports[s12.ip]); m == nil || !strings.Contains(s12.descr, "FW: V"+m[1]) {
		t.Errorf("%s: s7-info version %v, SNMP sysDescr %q", s12.ip, m, s12.descr)
	} else if page := get(t, s12.ip, "/Portal/Portal.mwsl"); !strings.Contains(page, "V"+m[1]) || !strings.Contains(page, `<span class="mode">RUN</span>`) {
		t.Errorf("%s: start page lacks firmware V%s or RUN", s12.ip, m[1])
	}
	if m := regexp.MustCompile(`BMX P34 2020 v(\d+\.\d+)`).FindStringSubmatch(reports[m340.ip]); m == nil || !strings.Contains(m340.descr, "V"+m[1]) {
		t.Errorf("%s: Modbus identification %v, SNMP sysDescr %q", m340.ip, m, m340.descr)
	} else if page := get(t, m340.ip, "/html/english/home/home.htm"); !strings.Contains(page, m[1]) {
		t.Errorf("%s: home page lacks firmware %s", m340.ip, m[1])
	}
	if m := regexp.MustCompile(`revision: (\d+\.\d+)`).FindStringSubmatch(reports[clx.ip]); m == nil || !strings.Contains(clx.descr, "Rev "+m[1]) {
		t.Errorf("%s: enip-info revision %v, SNMP sysDescr %q", clx.ip, m, clx.descr)
	} else if page := get(t, clx.ip, "/index.html"); !strings.Contains(page, m[1]) {
		t.Errorf("%s: home page lacks revision %s", clx.ip, m[1])
	}
	m := regexp.MustCompile(`serialNumber: 0x([0-9a-f]+)`).FindStringSubmatch(reports[clx.ip])
	var serial uint64
	if m != nil {
		serial, _ = strconv.ParseUint(m[1], 16, 32)
	}
	if m == nil || !strings.Contains(get(t, clx.ip, "/index.html"), fmt.Sprintf("%08X", serial)) {
		t.Errorf("%s: enip-info serial %v is not the web page's", clx.ip, m)
	}
}
