package packaging

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func TestAlertRulesCheck(t *testing.T) {
	protocoltest.NeedTool(t, "promtool")
	out, err := exec.Command("promtool", "check", "rules", "prometheus/icsnare-alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

// metricNameRe finds metric names in PromQL expressions: the sensor's, the process
// collector's and Prometheus's own up.
var metricNameRe = regexp.MustCompile(`\b(icsnare_[a-z_]+|process_[a-z_]+|up)\b`)

// TestMonitoringUsesExportedMetrics runs the sensor with the default profile, drives every
// protocol it serves with real clients (mbpoll, snmpget, curl, and an S7 SZL read), scrapes
// it, checks the scrape with `promtool check metrics`, and checks that every metric the
// Grafana dashboard and the alert rules name is in the scrape.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	for _, tool := range []string{"promtool", "mbpoll", "snmpget", "curl"} {
		protocoltest.NeedTool(t, tool)
	}
	bin := buildSensor(t)
	off := protocoltest.FreeOffset(t, 80, 102, 161, 502)
	addr := "127.53." + strconv.Itoa(1+(os.Getpid()+7)%250) + ".2"
	mln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := mln.Addr().String()
	mln.Close()
	state := t.TempDir()
	cmd := exec.Command(bin, "run", "--listen", addr, "--port-offset", strconv.Itoa(off), "--user", "root",
		"--state", state, "--metrics", metricsAddr, "--events", filepath.Join(state, "events.jsonl"))
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	client := &http.Client{Timeout: 5 * time.Second}
	ready := false
	for range 100 {
		if resp, err := client.Get("http://" + metricsAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ready = true
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ready {
		t.Fatalf("sensor not ready:\n%s", logs.String())
	}

	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("mbpoll", "-m", "tcp", "-p", strconv.Itoa(502+off), "-a", "1", "-r", "1", "-c", "4", "-1", "-t", "4", addr)
	run("snmpget", "-v2c", "-c", "public", "-t", "3", "-r", "1", addr+":"+strconv.Itoa(161+off), "1.3.6.1.2.1.1.1.0")
	run("curl", "-sf", "-o", "/dev/null", "http://"+addr+":"+strconv.Itoa(80+off)+"/")
	if err := protocoltest.S7ReadSZL(addr + ":" + strconv.Itoa(102+off)); err != nil {
		t.Fatal(err)
	}

	resp, err := client.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = strings.NewReader(string(scrape))
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	exported := map[string]bool{"up": true}
	for line := range strings.SplitSeq(string(scrape), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			exported[strings.Fields(rest)[0]] = true
		}
	}
	for _, proto := range []string{"modbus", "s7comm", "snmp", "http"} {
		if !strings.Contains(string(scrape), `icsnare_requests_total{kind=`) || !strings.Contains(string(scrape), `protocol="`+proto+`"`) {
			t.Errorf("no requests counted for %s", proto)
		}
	}

	var used []string
	rules, _ := os.ReadFile("prometheus/icsnare-alerts.yml")
	used = append(used, metricNameRe.FindAllString(exprLines(string(rules)), -1)...)
	raw, err := os.ReadFile("grafana/icsnare.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct{ List []struct{ Query any } }
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/icsnare.json: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			used = append(used, metricNameRe.FindAllString(tg.Expr, -1)...)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			used = append(used, metricNameRe.FindAllString(q, -1)...)
		}
	}
	slices.Sort(used)
	used = slices.Compact(used)
	for _, name := range used {
		// A counter's samples are NAME_total under "# TYPE NAME_total counter" in the text
		// format; histograms and summaries add suffixes to their base name.
		base := name
		for _, suffix := range []string{"_total", "_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !exported[name] && !exported[base] {
			t.Errorf("the dashboard or the alert rules use %s, which the sensor does not export", name)
		}
	}
	t.Logf("%d metric names used by the dashboard and the rules: %s", len(used), strings.Join(used, " "))
}

// exprLines returns the expr: lines of a rules file (the rest is prose).
func exprLines(rules string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(rules, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
			b.WriteString(v + "\n")
		}
	}
	return b.String()
}
