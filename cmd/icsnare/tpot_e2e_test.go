package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// tpotConfig is a Conpot configuration file laid out as T-Pot's: the JSON log's file name
// and the data directory come from the container's environment through ConfigParser's
// %(VAR)s interpolation, the sinks T-Pot leaves off are off, and the public IP lookup on.
const tpotConfig = `[common]
sensorid = conpot

[virtual_file_system]
data_fs_url = %(CONPOT_TMP)s
fs_url = tar:///nonexistent/data.tar

[session]
timeout = 30

[json]
enabled = True
filename = %(CONPOT_JSON_LOG)s

[sqlite]
enabled = False

[syslog]
enabled = False
socket = dev        ; an inline comment ConfigParser keeps in the value

[hpfriends]
enabled = False

[taxii]
enabled = False

[fetch_public_ip]
enabled = True
urls = ["http://192.0.2.1/never-fetched"]

[change_mac_addr]
enabled = False
iface = eth0
addr = 00:00:5e:00:53:01
`

// logstashConpot applies T-Pot's Logstash filter for type "ConPot", written down here:
//
//	date    { match => ["timestamp", "ISO8601"] }
//	mutate  { rename => { "dst_port" => "dest_port" "dst_ip" => "dest_ip" } }
//	mutate  { convert => { "dest_port" => "integer" "src_port" => "integer"
//	                       "id" => "string" "request" => "string" } }
//
// The date filter fails (tags _dateparsefailure) on a timestamp that is not ISO 8601;
// convert turns numbers and strings, and leaves a hash (SNMP's {oid, val}) alone.
func logstashConpot(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{"type": "ConPot"}
	for k, v := range doc {
		out[k] = v
	}
	ts, _ := doc["timestamp"].(string)
	at, err := parseISO8601(ts)
	if err != nil {
		t.Errorf("Logstash date filter: timestamp %q: %v", ts, err)
	}
	out["@timestamp"] = at
	for from, to := range map[string]string{"dst_port": "dest_port", "dst_ip": "dest_ip"} {
		out[to] = out[from]
		delete(out, from)
	}
	for _, k := range []string{"dest_port", "src_port"} {
		n, ok := out[k].(json.Number)
		if !ok {
			t.Errorf("Logstash convert: %s = %#v is not a number", k, out[k])
			continue
		}
		i, err := strconv.Atoi(n.String())
		if err != nil || i < 0 || i > 65535 {
			t.Errorf("Logstash convert: %s = %s is not a port", k, n)
		}
		out[k] = i
	}
	for _, k := range []string{"id", "request"} {
		switch v := out[k].(type) {
		case json.Number:
			out[k] = v.String()
		case string, nil, map[string]any:
		default:
			t.Errorf("Logstash convert: %s = %#v", k, v)
		}
	}
	return out
}

// parseISO8601 accepts what Logstash's ISO8601 date pattern does for Conpot's naive
// timestamps: date, T, time, optional fraction, optional zone (none: UTC).
func parseISO8601(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not ISO 8601")
}

// tpotUID is the uid and gid T-Pot runs its containers and Logstash as.
const tpotUID = 2000

// conpotDocKeys are the twelve keys of Conpot's JSON logger, nothing more.
var conpotDocKeys = []string{"data_type", "dst_ip", "dst_port", "event_type", "id", "public_ip", "request",
	"response", "sensorid", "src_ip", "src_port", "timestamp"}

var (
	uuidRE    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	pyBytesRE = regexp.MustCompile(`^b'([0-9a-f]{2})+'$`)
)

// TestTPotDropIn runs icsnare as T-Pot runs Conpot — the binary invoked as "conpot" with
// T-Pot's command line and a T-Pot style conpot.cfg — drives Modbus (mbpoll), s7comm (nmap
// s7-info), SNMP (snmpget) and HTTP (curl) sessions against it, and feeds the JSON log
// through T-Pot's Logstash Conpot mapping and ewsposter's NEW_CONNECTION filter; the events
// file is rotated with SIGHUP on the way.
func TestTPotDropIn(t *testing.T) {
	mbpoll := protocoltest.NeedTool(t, "mbpoll")
	nmap := protocoltest.NeedTool(t, "nmap")
	snmpget := protocoltest.NeedTool(t, "snmpget")
	curl := protocoltest.NeedTool(t, "curl")

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "conpot.cfg")
	if err := os.WriteFile(cfgFile, []byte(tpotConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	logDir := filepath.Join(dir, "log")
	for _, d := range []string{tmp, logDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	jsonLog := filepath.Join(logDir, "conpot_default.json")
	textLog := filepath.Join(logDir, "conpot_default.log")
	off := protocoltest.FreeOffset(t, 502, 102, 161, 80)
	addr := "127.34.0.17"

	bin := buildStatic(t)
	conpot := filepath.Join(filepath.Dir(bin), "conpot")
	if err := os.Symlink(bin, conpot); err != nil {
		t.Fatal(err)
	}
	// T-Pot's command line, then icsnare's own flags for the test's address and ports.
	cmd := exec.Command(conpot, "--mibcache", tmp, "--temp_dir", tmp, "--template", "default",
		"--logfile", textLog, "--config", cfgFile,
		"--", "--listen", addr, "--port-offset", strconv.Itoa(off), "--metrics", "off", "--user", "root")
	// As T-Pot does, run as uid and gid 2000 (Logstash's) when the test can.
	asTPot := os.Geteuid() == 0
	if asTPot {
		for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
			os.Chmod(d, 0o755)
		}
		for _, d := range []string{tmp, logDir} {
			os.Chown(d, tpotUID, tpotUID)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tpotUID, Gid: tpotUID}}
	}
	cmd.Env = append(os.Environ(), "CONPOT_TMP="+tmp, "CONPOT_JSON_LOG="+jsonLog, "CONPOT_LOG="+textLog,
		"CONPOT_CONFIG="+cfgFile, "CONPOT_TEMPLATE=default")
	logs := &syncLog{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Error("icsnare did not exit within 5 s of SIGTERM")
		}
	}
	t.Cleanup(stop)
	port := func(p int) string { return strconv.Itoa(p + off) }
	waitListening(t, addr+":"+port(502))

	// Modbus: two sessions, one read each.
	for range 2 {
		out, err := protocoltest.Run(t, 20*time.Second, mbpoll, "-m", "tcp", "-a", "1", "-t", "4", "-r", "1", "-c", "4", "-1",
			"-p", port(502), addr)
		if err != nil || !strings.Contains(out, "[1]:") {
			t.Fatalf("mbpoll: %v\n%s", err, out)
		}
	}
	// s7comm: nmap's s7-info (forced: its port rule wants 102).
	out, err := protocoltest.Run(t, 60*time.Second, nmap, "-Pn", "-n", "-sT", "-p", port(102), "--script", "+s7-info", addr)
	if err != nil || !strings.Contains(out, "s7-info") {
		t.Fatalf("nmap s7-info: %v\n%s", err, out)
	}
	// SNMP: one v2c GET.
	out, err = protocoltest.Run(t, 20*time.Second, snmpget, "-On", "-v2c", "-c", "public", "-t", "2", "-r", "1",
		addr+":"+port(161), "1.3.6.1.2.1.1.5.0")
	if err != nil || !strings.Contains(out, "1.3.6.1.2.1.1.5.0") {
		t.Fatalf("snmpget: %v\n%s", err, out)
	}
	// HTTP: two requests on one connection.
	base := "http://" + addr + ":" + port(80)
	out, err = protocoltest.Run(t, 20*time.Second, curl, "-s", "-o", "/dev/null", "-w", "%{http_code}\n",
		base+"/index.html", base+"/missing.html")
	if err != nil || !strings.Contains(out, "200") || !strings.Contains(out, "404") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	// The sessions' documents are written as each session ends, which for HTTP is when the
	// sensor sees the connection close, after curl has exited: wait for the last of them
	// before rotating, so none lands in the new file.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(jsonLog); bytes.Contains(b, []byte("/missing.html")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no document of the HTTP session in %s within 10 s\n%s", jsonLog, logs.String())
		}
	}
	// logrotate: the file moves away, SIGHUP makes the sensor open a new one, and the next
	// session (a second SNMP GET) lands there.
	rotated := jsonLog + ".1"
	if err := os.Rename(jsonLog, rotated); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(jsonLog); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new JSON log after SIGHUP\n%s", logs.String())
		}
	}
	out, err = protocoltest.Run(t, 20*time.Second, snmpget, "-On", "-v2c", "-c", "public", "-t", "2", "-r", "1",
		addr+":"+port(161), "1.3.6.1.2.1.1.5.0")
	if err != nil || !strings.Contains(out, "1.3.6.1.2.1.1.5.0") {
		t.Fatalf("snmpget after SIGHUP: %v\n%s", err, out)
	}
	stop()

	notes := logs.String()
	for _, want := range []string{"[fetch_public_ip] enabled: never looked up", "[syslog] disabled: icsnare has no syslog sink yet",
		"--mibcache " + tmp + ": not used", "[json] " + jsonLog + ": Conpot's JSON documents"} {
		if !strings.Contains(notes, want) {
			t.Errorf("log lacks the note %q:\n%s", want, notes)
		}
	}
	if b, err := os.ReadFile(textLog); err != nil || !strings.Contains(string(b), "sensor running") {
		t.Errorf("--logfile %s: %v\n%s", textLog, err, b)
	}
	var raw []byte
	for _, f := range []string{rotated, jsonLog} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatalf("JSON log: %v\n%s", err, notes)
		}
		if st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", f, st.Mode().Perm())
		}
		if sys := st.Sys().(*syscall.Stat_t); asTPot && (sys.Uid != tpotUID || sys.Gid != tpotUID) {
			t.Errorf("%s: owned by %d:%d, want T-Pot's %d:%d", f, sys.Uid, sys.Gid, tpotUID, tpotUID)
		}
		b, _ := os.ReadFile(f)
		if f == jsonLog && (!bytes.Contains(b, []byte(`"data_type": "snmp"`)) || bytes.Count(b, []byte("\n")) != 1) {
			t.Errorf("the file reopened on SIGHUP holds %q, want the second SNMP GET's document", b)
		}
		raw = append(raw, b...)
	}
	t.Logf("%s", raw)

	type session struct {
		dataType string
		docs     []map[string]any
	}
	sessions := map[string]*session{}
	var order []string
	for i, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		keys := make([]string, 0, len(doc))
		for k := range doc {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, conpotDocKeys) {
			t.Errorf("line %d: keys %v, want exactly %v", i+1, keys, conpotDocKeys)
		}
		types := map[string]func(any) bool{
			"timestamp": isString, "sensorid": isString, "id": isString, "src_ip": isString, "dst_ip": isString,
			"src_port": isNumber, "dst_port": isNumber, "data_type": isString,
			"public_ip": isNull, "event_type": orNull(isString),
			"request": orNull(isStringOrObject), "response": orNull(isStringOrObject),
		}
		for k, ok := range types {
			if !ok(doc[k]) {
				t.Errorf("line %d: %s = %#v has the wrong JSON type", i+1, k, doc[k])
			}
		}
		if id, _ := doc["id"].(string); !uuidRE.MatchString(id) {
			t.Errorf("line %d: id %q is not a UUID", i+1, id)
		}
		for _, k := range []string{"src_ip", "dst_ip"} {
			if s, _ := doc[k].(string); !validAddr(s) {
				t.Errorf("line %d: %s %q", i+1, k, s)
			}
		}
		if doc["sensorid"] != "conpot" || doc["dst_ip"] != addr {
			t.Errorf("line %d: sensorid %v dst_ip %v", i+1, doc["sensorid"], doc["dst_ip"])
		}
		mapped := logstashConpot(t, doc)
		if _, ok := mapped["dst_port"]; ok || mapped["dest_ip"] != addr {
			t.Errorf("line %d: Logstash mapping left %v", i+1, mapped)
		}
		id := doc["id"].(string)
		s := sessions[id]
		if s == nil {
			s = &session{dataType: doc["data_type"].(string)}
			sessions[id] = s
			order = append(order, id)
		}
		if s.dataType != doc["data_type"] {
			t.Errorf("session %s mixes data_type %s and %s", id, s.dataType, doc["data_type"])
		}
		s.docs = append(s.docs, doc)
	}

	// Sessions that carried requests, per protocol (waitListening's and nmap's port probes
	// open Modbus and s7comm sessions without any).
	count := map[string]int{}
	var httpDocs []map[string]any
	for _, id := range order {
		s := sessions[id]
		for _, d := range s.docs {
			if d["request"] != nil {
				count[s.dataType]++
				break
			}
		}
		// Every document of a session carries the session's start time.
		for _, d := range s.docs {
			if d["timestamp"] != s.docs[0]["timestamp"] {
				t.Errorf("session %s: timestamps %v and %v", id, s.docs[0]["timestamp"], d["timestamp"])
			}
		}
		// ewsposter keeps event_type == "NEW_CONNECTION" lines: one per session of a protocol
		// Conpot opens sessions for, none for HTTP and SNMP (Conpot logs none for them).
		var newConn []map[string]any
		var kinds []string
		for _, d := range s.docs {
			et, _ := d["event_type"].(string)
			kinds = append(kinds, et)
			if et == "NEW_CONNECTION" {
				newConn = append(newConn, d)
			}
		}
		wantNew := 1
		if s.dataType == "http" || s.dataType == "snmp" {
			wantNew = 0
		}
		if len(newConn) != wantNew {
			t.Errorf("%s session %s: ewsposter's filter selects %d events, want %d (%v)", s.dataType, id, len(newConn), wantNew, kinds)
		}
		for _, d := range newConn {
			for _, k := range []string{"timestamp", "src_ip", "dst_ip", "src_port", "dst_port", "data_type"} {
				if d[k] == nil {
					t.Errorf("NEW_CONNECTION lacks %s, which ewsposter submits", k)
				}
			}
		}
		switch s.dataType {
		case "modbus", "s7comm":
			if kinds[0] != "NEW_CONNECTION" || kinds[len(kinds)-1] != "CONNECTION_LOST" || len(kinds) < 2 {
				t.Errorf("%s session: event types %v, want NEW_CONNECTION … CONNECTION_LOST", s.dataType, kinds)
			}
			for _, d := range s.docs[1 : len(s.docs)-1] {
				req, _ := d["request"].(string)
				resp, _ := d["response"].(string)
				if d["event_type"] != nil || !pyBytesRE.MatchString(req) || !pyBytesRE.MatchString(resp) {
					t.Errorf("%s request document: %v", s.dataType, d)
				}
				if s.dataType == "modbus" {
					// mbpoll reads 4 holding registers of unit 1 at 0: the response PDU alone.
					if !strings.HasPrefix(req, "b'") || req[2+12:2+14] != "01" || !strings.HasPrefix(resp, "b'0308") || len(resp) != 3+2*10 {
						t.Errorf("modbus request %s response %s: want the ADU and the response PDU 03 08 …", req, resp)
					}
				} else if !strings.HasPrefix(req, "b'0300") {
					t.Errorf("s7comm request %s: want the TPKT frame", req)
				}
			}
		case "snmp":
			d := s.docs[0]
			req, _ := d["request"].(map[string]any)
			resp, _ := d["response"].(map[string]any)
			if len(s.docs) != 1 || d["event_type"] != "SNMPv2 Get" || req["oid"] != "1.3.6.1.2.1.1.5.0" || req["val"] != "" ||
				resp["oid"] != "1.3.6.1.2.1.1.5.0" || resp["val"] == "" {
				t.Errorf("snmp session: %v", s.docs)
			}
		case "http":
			// One document per request; curl's two requests share a connection unless the
			// persona answers HTTP/1.0 (the S7-300's web server does), then two sessions.
			httpDocs = append(httpDocs, s.docs...)
		default:
			t.Errorf("unexpected data_type %s", s.dataType)
		}
		// The Kibana top-10 tables use request.keyword and response.keyword (ignore_above 256).
		if s.dataType != "s7comm" {
			for _, d := range s.docs {
				for _, k := range []string{"request", "response"} {
					if v, ok := d[k].(string); ok && len(v) >= 256 {
						t.Errorf("%s %s of %d characters", s.dataType, k, len(v))
					}
				}
			}
		}
	}
	// With two sessions, their documents reach the file in the order the sessions ended,
	// which need not be the order of the requests: take them in request time.
	slices.SortStableFunc(httpDocs, func(a, b map[string]any) int {
		ta, _ := a["timestamp"].(string)
		tb, _ := b["timestamp"].(string)
		return strings.Compare(ta, tb)
	})
	if len(httpDocs) != 2 {
		t.Errorf("http: %d documents, want one per request", len(httpDocs))
	} else {
		for i, want := range []struct{ path, status string }{{"/index.html", "200"}, {"/missing.html", "404"}} {
			d := httpDocs[i]
			req, _ := d["request"].(string)
			if d["event_type"] != nil || d["response"] != want.status ||
				!strings.HasPrefix(req, "('"+want.path+"', [('Host', '"+addr+":"+port(80)+"'), ('User-Agent', 'curl/") ||
				!strings.HasSuffix(req, "], None)") {
				t.Errorf("http document %d: %v", i, d)
			}
		}
	}
	if count["modbus"] != 2 || count["s7comm"] != 1 || count["snmp"] != 2 || count["http"] < 1 || count["http"] > 2 {
		t.Errorf("sessions per protocol %v, want modbus 2, s7comm 1, snmp 2, http 1 or 2", count)
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }
func isNumber(v any) bool { _, ok := v.(json.Number); return ok }
func isNull(v any) bool   { return v == nil }
func isStringOrObject(v any) bool {
	switch v.(type) {
	case string, map[string]any:
		return true
	}
	return false
}
func orNull(f func(any) bool) func(any) bool { return func(v any) bool { return v == nil || f(v) } }
func validAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
