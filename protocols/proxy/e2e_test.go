package proxy_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/all" // the binary's protocols and decoders
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

const decoder382 = "conpot.protocols.kamstrup_meter.decoder_382.Decoder382"

// TestBinaryAsNobody runs the icsnare binary as root on Conpot's proxy template, unchanged,
// with the backends set in the configuration file as an operator would; the sensor drops
// to nobody under its seccomp allow-list and still connects to the backends (plain and
// TLS, one named by DNS name), serves TLS with a generated certificate to curl, closes
// cleanly when a backend is down, and writes the chunk events. Hosts are a /25 of
// 127.33.0.0/16 on the loopback, the ports the template's plus an offset.
func TestBinaryAsNobody(t *testing.T) {
	protocoltest.NeedRoot(t)
	protocoltest.NeedTool(t, "go")
	curl := protocoltest.NeedTool(t, "curl")
	net24 := fmt.Sprintf("127.33.%d", 100+rand.IntN(150))
	meter := listen(t, net24+".250", func(c net.Conn) {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if n > 0 && bytes.IndexByte(buf[:n], 0x0d) >= 0 {
				c.Write(mustHex("403f100409160443000000004a410d"))
			}
			if err != nil {
				return
			}
		}
	})
	// The console is named by DNS name, resolved by the sensor under its allow-list.
	console := listen(t, "127.0.0.1", func(c net.Conn) {
		c.Write([]byte("\r\nWelcome...\r\n"))
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			c.Write([]byte("\r\nSoftware Version: 5.5 (E5)\r\n"))
			_ = line
		}
	})
	console = "localhost:" + console[strings.LastIndexByte(console, ':')+1:]
	web := listenTLS(t, net24+".252")
	down := net24 + ".253:9" // nothing listens there

	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	template, err := filepath.Abs("../../testdata/conpot/proxy")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "icsnare.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
[[hosts]]
addresses = ["%s.0/25"]
profile = %q

[protocols.proxy.backends]
"Kamstrup Channel A" = %q
"Kamstrup Channel B" = %q
"Kamstrup telnet" = %q
"SSL proxy" = %q
`, net24, template, meter, down, console, web)), 0o644)
	off := freeOffset(t)
	events := filepath.Join(dir, "events.jsonl")
	bin := filepath.Join(dir, "icsnare")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/icsnare")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--port-offset", strconv.Itoa(off), "--user", "nobody",
		"--metrics", "off", "--events", events, "--state", filepath.Join(dir, "state"))
	logs := &syncBuf{}
	cmd.Stderr, cmd.Stdout = logs, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Error("icsnare did not stop within 5 s of SIGTERM")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "sensor running") {
		if time.Now().After(deadline) {
			t.Fatalf("sensor did not start:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("sensor log:\n%s", logs)
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	for _, want := range []string{"Uid:\t65534", "Seccomp:\t2", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Fatalf("sensor status lacks %q:\n%s", want, status)
		}
	}
	if !strings.Contains(logs.String(), `proxy.xml:17: <proxy>: proxy \"SSL proxy\": \"ssl.key\" not found`) {
		t.Errorf("no warning for the missing key pair")
	}
	hostA, hostB := net24+".10", net24+".11"
	at := func(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port+off)) }

	// Channel A, from two hosts: the meter's reply comes back.
	for _, h := range []string{hostA, hostB} {
		c, err := net.DialTimeout("tcp", at(h, 1025), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(mustHex("803f10010409186d0d"))
		reply := make([]byte, 15)
		if _, err := io.ReadFull(c, reply); err != nil || hex.EncodeToString(reply) != "403f100409160443000000004a410d" {
			t.Fatalf("channel A via %s: %x %v", h, reply, err)
		}
		c.Close()
	}
	// Channel B's backend is down: an orderly close.
	c, err := net.DialTimeout("tcp", at(hostA, 1026), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("channel B: %q %v", b, err)
	}
	c.Close()
	// The console, as text.
	c, err = net.DialTimeout("tcp", at(hostB, 50100), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n')
	r.ReadString('\n')
	c.Write([]byte("!GV\r\n"))
	r.ReadString('\n')
	if line, err := r.ReadString('\n'); err != nil || line != "Software Version: 5.5 (E5)\r\n" {
		t.Fatalf("console: %q %v", line, err)
	}
	c.Close()
	// TLS terminated by the sensor (a certificate generated for host A), TLS to the backend.
	out, err := protocoltest.Run(t, 30*time.Second, curl, "-sS", "-k", "-v", "--max-time", "20", "https://"+at(hostA, 1234)+"/index.htm")
	if err != nil || !strings.HasSuffix(out, "device page /index.htm") || !strings.Contains(out, "subject: CN="+hostA) {
		t.Fatalf("curl: %v\n%s", err, out)
	}

	// The events, as the sensor wrote them.
	var evs []map[string]any
	eventually(t, func() bool {
		evs = readEvents(t, events)
		return count(evs, "proxy.end", "") >= 3 && count(evs, "proxy.backend_error", "") >= 1
	})
	if n := count(evs, "proxy.request", "Kamstrup Channel A"); n != 2 {
		t.Errorf("%d channel A requests", n)
	}
	for _, e := range evs {
		switch {
		case e["event_type"] == "proxy.backend_error":
			if e["proxy"] != "Kamstrup Channel B" || e["error"] != "connection refused" {
				t.Errorf("backend_error %v", e)
			}
		case e["event_type"] == "proxy.request" && e["proxy"] == "Kamstrup telnet":
			if e["decoded"] != "!GV\r\n" || e["request"] != "2147560d0a" {
				t.Errorf("console request %v", e)
			}
		case (e["event_type"] == "proxy.request" || e["event_type"] == "proxy.response") && e["proxy"] == "Kamstrup Channel A":
			_, decoded := e["decoded"]
			if _, have := protocols.LookupDecoder(decoder382); have != decoded {
				t.Errorf("channel A chunk: decoded %v with Decoder382 registered %v: %v", decoded, have, e)
			}
			t.Logf("%s %v%v: %q", e["event_type"], e["request"], e["response"], e["decoded"])
		case e["event_type"] == "proxy.tls":
			if e["certificate"] != "generated" || e["dst_ip"] != hostA {
				t.Errorf("tls %v", e)
			}
		}
	}
}

// freeOffset finds a port offset at which the template's four ports are free, putting
// 50100 above the kernel's ephemeral range (where client sockets of other tests could take
// it between the check and the bind) and the others below it.
func freeOffset(t *testing.T) int {
	t.Helper()
	lo, hi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo, &hi)
	}
	first, last := hi+1-50100, 65535-50100
	if first > last || 1234+last >= lo {
		first, last = 1000, 15000 // an unusual range: take the chance
	}
	for range 100 {
		off := first + rand.IntN(last-first+1)
		ok := true
		for _, p := range []int{1025, 1026, 1234, 50100} {
			ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", p+off))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return off
		}
	}
	t.Fatal("no free port offset")
	return 0
}

func count(evs []map[string]any, typ, proxy string) int {
	n := 0
	for _, e := range evs {
		if e["event_type"] == typ && (proxy == "" || e["proxy"] == proxy) {
			n++
		}
	}
	return n
}

func readEvents(t *testing.T, file string) []map[string]any {
	b, _ := os.ReadFile(file)
	var out []map[string]any
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			continue // a line being written
		}
		out = append(out, m)
	}
	return out
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// listen serves handle on addr:0 and returns the listener's address.
func listen(t *testing.T, addr string, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
