package sensor

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/internal/netnstest"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// Host memory targets of the default (S7-300) persona, as live heap per host.
const (
	idleHostTarget   = 1024 // materialised, nothing asked
	modbusHostTarget = 2048 // answered one Modbus read
)

// TestHostCostWithinEstimate measures the live heap a host of the default persona costs
// in three states, each on its own set of addresses inside a namespace the test owns:
// materialised and idle, after one Modbus read, and after every protocol of the persona
// (Modbus's four tables, an S7 SZL read, an SNMP GET, an HTTP page; the UDP flow SNMP
// keeps for the client is counted too). It holds the idle and Modbus figures to the
// targets, and the last to what HostCost (the figure max_hosts derives from) allows for
// it: half, the rest being the collector's headroom. With ICSNARE_HEAP_PROFILES=DIR it
// writes a heap profile after each phase (heap-idle.pb.gz …; compare them with go tool
// pprof -base), sampling one allocation in every 64 bytes.
func TestHostCostWithinEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("materialises 3,000 hosts")
	}
	profDir := os.Getenv("ICSNARE_HEAP_PROFILES")
	if profDir != "" {
		runtime.MemProfileRate = 64
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	ns := netnstest.New(t)
	protocols.SetTiming(false)
	defer protocols.SetTiming(true)
	cfg := DefaultConfig()
	// Inside the namespace lo holds 127.0.0.0/8, so these addresses are local and the
	// sensor can bind the standard ports on the wildcard without touching the host.
	cfg.Hosts = []HostRule{{Addresses: []string{"127.82.0.0/20"}, Profile: "default"}}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.Events.File = ""
	cfg.Limits.UDPAmplification = 0
	cfg.Limits.MaxConnsPerSource, cfg.Limits.MaxConnsPerSourcePrefix = 4096, 4096
	s := runInNamespace(t, ns, cfg)

	// Dial inside the namespace (ns.Dial would keep every connection for the test's cleanup,
	// which this test would count as the hosts' memory).
	dial := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = ns.Do(func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}}
	addr := func(phase, i int) string { return fmt.Sprintf("127.82.%d.%d", 4*phase+i/250, 1+i%250) }
	const n = 1000
	phases := []struct {
		name  string
		touch func(ip string) error
		max   float64
	}{
		{"idle", func(ip string) error {
			if _, ok := s.hosts.get(netip.MustParseAddr(ip)); !ok {
				return fmt.Errorf("%s: no host", ip)
			}
			return nil
		}, idleHostTarget},
		{"modbus", func(ip string) error {
			return ns.Do(func() error { return modbusRead(ip+":502", []byte{3}) })
		}, modbusHostTarget},
		{"all", func(ip string) error {
			return ns.Do(func() error {
				if err := modbusRead(ip+":502", []byte{1, 2, 3, 4}); err != nil {
					return err
				}
				if err := protocoltest.S7ReadSZL(ip + ":102"); err != nil {
					return err
				}
				g := &gosnmp.GoSNMP{Target: ip, Port: 161, Community: "public", Version: gosnmp.Version2c,
					Timeout: 3 * time.Second, Retries: 2}
				if err := g.Connect(); err != nil {
					return err
				}
				defer g.Conn.Close()
				if _, err := g.Get([]string{"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.2.2.1.6.1"}); err != nil {
					return fmt.Errorf("snmp %s: %w", ip, err)
				}
				return nil
			})
		}, HostCost / 2},
	}
	// One host through every protocol first, so that what all hosts share (the compiled
	// profile, buffers, pools, flows tables) is not counted against the rest.
	if err := phases[2].touch("127.82.15.1"); err != nil {
		t.Fatal(err)
	}
	if err := httpGet(client, "127.82.15.1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for pi, ph := range phases {
		before := liveHeap()
		for i := range n {
			ip := addr(pi, i)
			if err := ph.touch(ip); err != nil {
				t.Fatal(err)
			}
			if ph.name == "all" {
				if err := httpGet(client, ip); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Let the sessions' goroutines finish (UDP flows keep their state: they are part
		// of what a touched host costs).
		time.Sleep(200 * time.Millisecond)
		after := liveHeap()
		per := float64(int64(after)-int64(before)) / n
		t.Logf("%-6s %d hosts: %6.0f bytes of live heap per host (HostCost allows %d resident)", ph.name, n, per, HostCost)
		if profDir != "" {
			f, err := os.Create(filepath.Join(profDir, "heap-"+ph.name+".pb.gz"))
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		if per > ph.max {
			t.Errorf("%s: a host costs %.0f bytes of live heap, over its bound of %.0f (for all protocols HostCost/2: raise HostCost or find the growth)", ph.name, per, ph.max)
		}
	}
}

func httpGet(client *http.Client, ip string) error {
	resp, err := client.Get("http://" + ip + "/")
	if err != nil {
		return fmt.Errorf("http %s: %w", ip, err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// modbusRead reads 8 items of each table fcs names (1 coils … 4 input registers) over one
// connection.
func modbusRead(addr string, fcs []byte) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for _, fc := range fcs {
		req := []byte{0, fc, 0, 0, 0, 6, 1, fc, 0, 0, 0, 8}
		if _, err := c.Write(req); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf[:7]); err != nil {
			return fmt.Errorf("modbus %s fc %d: %w", addr, fc, err)
		}
		n := int(binary.BigEndian.Uint16(buf[4:6])) - 1
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return err
		}
		if buf[0]&0x80 != 0 {
			return fmt.Errorf("modbus %s fc %d: exception %d", addr, fc, buf[1])
		}
	}
	return nil
}
