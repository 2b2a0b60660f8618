package packaging

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]struct {
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		User        string            `yaml:"user"`
	} `yaml:"services"`
}

var socketsRe = regexp.MustCompile(`sockets="\[([^\]]*)\]"`)

// TestTPotCompose runs every service of packaging/tpot/docker-compose.yml the way the
// container would (its entrypoint, command line and environment, with the volumes mapped to
// temporary directories and the regenerated Conpot templates as ./templates), checks that
// it serves each published port, and that a TCP session lands in its JSON log as Conpot's
// NEW_CONNECTION document.
func TestTPotCompose(t *testing.T) {
	raw, err := os.ReadFile("tpot/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(cf.Services) != 5 {
		t.Fatalf("%d services, want T-Pot's five Conpot containers", len(cf.Services))
	}
	bin := buildSensor(t)
	templates, _ := filepath.Abs("../testdata/conpot")
	cfg, _ := filepath.Abs("tpot/conpot.cfg")
	for name, svc := range cf.Services {
		t.Run(name, func(t *testing.T) {
			if svc.User != "2000:2000" || len(svc.Entrypoint) != 2 || svc.Entrypoint[1] != "conpot" {
				t.Fatalf("user %q entrypoint %v: want 2000:2000 and icsnare conpot", svc.User, svc.Entrypoint)
			}
			dir := t.TempDir()
			paths := map[string]string{"/tmp/conpot": filepath.Join(dir, "tmp")}
			for _, v := range svc.Volumes {
				parts := strings.Split(v, ":")
				switch {
				case parts[0] == "./conpot.cfg":
					paths[parts[1]] = cfg
				case parts[0] == "./templates":
					paths[parts[1]] = templates
				default:
					paths[parts[1]] = filepath.Join(dir, "log")
				}
			}
			for _, p := range paths {
				if strings.HasPrefix(p, dir) {
					os.MkdirAll(p, 0o755)
				}
			}
			local := func(s string) string {
				for c, h := range paths {
					if s == c || strings.HasPrefix(s, c+"/") {
						return h + strings.TrimPrefix(s, c)
					}
				}
				return s
			}
			var ports []string
			for _, p := range svc.Ports {
				hostPort, container, _ := strings.Cut(p, ":")
				if container == "" || hostPort == "" {
					t.Fatalf("port %q: want HOST:CONTAINER", p)
				}
				ports = append(ports, container)
			}
			var std []int
			for _, p := range ports {
				n, _ := strconv.Atoi(strings.TrimSuffix(p, "/udp"))
				std = append(std, n)
			}
			addr := fmt.Sprintf("127.53.%d.%d", 1+(os.Getpid()+len(name))%250, 10+len(name)%200)
			off := freeOffset(t, addr, ports)
			args := []string{"conpot"}
			for _, a := range svc.Command {
				args = append(args, local(a))
			}
			args = append(args, "--", "--listen", addr, "--port-offset", strconv.Itoa(off), "--metrics", "off", "--user", "root")
			cmd := exec.Command(bin, args...)
			cmd.Env = os.Environ()
			for k, v := range svc.Environment {
				cmd.Env = append(cmd.Env, k+"="+local(v))
			}
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
			lines := make(chan string, 64)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					default:
					}
				}
				close(lines)
			}()
			var sockets, logs string
			deadline := time.After(30 * time.Second)
		wait:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						text, _ := os.ReadFile(local(svc.Environment["CONPOT_LOG"]))
						t.Fatalf("the sensor exited:\n%s%s", logs, text)
					}
					logs += l + "\n"
					if m := socketsRe.FindStringSubmatch(l); m != nil {
						sockets = m[1]
						break wait
					}
				case <-deadline:
					t.Fatalf("not serving after 30 s:\n%s", logs)
				}
			}
			// The last TCP port: HTTP, first in the default service, has no connection
			// documents in Conpot's log.
			var tcpPort int
			for i, p := range ports {
				transport := "tcp"
				if strings.HasSuffix(p, "/udp") {
					transport = "udp"
				} else {
					tcpPort = std[i] + off
				}
				want := fmt.Sprintf("%s %s:%d", transport, addr, std[i]+off)
				if !strings.Contains(sockets, want) {
					t.Errorf("published port %s: %q not among the sockets [%s]", p, want, sockets)
				}
			}
			if tcpPort == 0 {
				return // IPMI: UDP only; its documents are tested with the protocol
			}
			c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", addr, tcpPort), 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			jsonLog := local(svc.Environment["CONPOT_JSON_LOG"])
			for range 50 {
				if b, _ := os.ReadFile(jsonLog); strings.Contains(string(b), `"event_type": "NEW_CONNECTION"`) {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			b, _ := os.ReadFile(jsonLog)
			t.Errorf("no NEW_CONNECTION document in %s:\n%s", jsonLog, b)
		})
	}
}

// freeOffset finds a port offset (at most 60000, the sensor's bound) at which every port
// (PORT or PORT/udp) is free on addr and stays below 65536.
func freeOffset(t *testing.T, addr string, ports []string) int {
	t.Helper()
	top := 0
	for _, p := range ports {
		n, _ := strconv.Atoi(strings.TrimSuffix(p, "/udp"))
		top = max(top, n)
	}
	for i := range 200 {
		// bind.port_offset is at most 60000, and no port may pass 65535.
		off := 1000 + (os.Getpid()*7919+i*4099)%(min(60000, 65535-top)-1000)
		ok := true
		for _, p := range ports {
			n, _ := strconv.Atoi(strings.TrimSuffix(p, "/udp"))
			hp := net.JoinHostPort(addr, strconv.Itoa(n+off))
			if strings.HasSuffix(p, "/udp") {
				c, err := net.ListenPacket("udp4", hp)
				if err != nil {
					ok = false
					break
				}
				c.Close()
			} else {
				l, err := net.Listen("tcp4", hp)
				if err != nil {
					ok = false
					break
				}
				l.Close()
			}
		}
		if ok {
			return off
		}
	}
	t.Fatal("no free port offset")
	return 0
}
