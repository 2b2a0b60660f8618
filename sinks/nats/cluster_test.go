package nats

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// clusterConf is the README's three-node configuration with this test's addresses.
const clusterConf = `server_name: %s
listen: %s
jetstream {
  store_dir: %s
}
cluster {
  name: icsnare
  listen: %s
  routes: [
%s  ]
}
`

func freePort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}

// TestThreeNodeCluster runs the README's three-node JetStream cluster on 127.77.N.1-3, lets
// the sink create a stream with three replicas, kills the node the sink is connected to in
// the middle and checks that every event is stored exactly once.
func TestThreeNodeCluster(t *testing.T) {
	bin := protocoltest.NeedTool(t, "nats-server")
	net2 := 1 + rand.IntN(250)
	var clients, routes []string
	for i := range 3 {
		host := fmt.Sprintf("127.77.%d.%d", net2, i+1)
		clients = append(clients, freePort(t, host))
		routes = append(routes, freePort(t, host))
	}
	var routeList strings.Builder
	for _, r := range routes {
		fmt.Fprintf(&routeList, "    nats-route://%s\n", r)
	}
	nodes := map[string]*exec.Cmd{}
	dir := t.TempDir()
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		conf := filepath.Join(dir, name+".conf")
		text := fmt.Sprintf(clusterConf, name, clients[i], filepath.Join(dir, name), routes[i], routeList.String())
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-c", conf)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		nodes[clients[i]] = cmd
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(log.Name())
				t.Logf("%s log (last 3000 bytes):\n%s", name, b[max(0, len(b)-3000):])
			}
		})
	}
	o := DefaultOptions()
	for _, c := range clients {
		o.Servers = append(o.Servers, "nats://"+c)
	}
	o.Stream, o.CreateStream, o.Replicas = "CLUSTER", true, 3
	o.AckTimeout, o.RetryMax = 2*time.Second, 500*time.Millisecond
	s, err := Open(context.Background(), *o, events.Env{SensorID: "fleet", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitSent := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for st := s.Stats(); st.Sent < n; st = s.Stats() {
			if time.Now().After(deadline) {
				t.Fatalf("not delivered: %+v, want %d sent", st, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range 200 {
		if err := s.Write(event(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitSent(200)
	victim := strings.TrimPrefix(s.nc.ConnectedUrl(), "nats://")
	cmd := nodes[victim]
	if cmd == nil {
		t.Fatalf("connected to %q, not one of %v", victim, clients)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Logf("killed %s, the node the sink was connected to", victim)
	for i := 200; i < 400; i++ {
		if err := s.Write(event(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitSent(400)
	var other string
	for _, c := range clients {
		if c != victim {
			other = c
		}
	}
	nc, err := nats.Connect("nats://" + other)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	str, err := js.Stream(ctx, "CLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	info := str.CachedInfo()
	if info.Config.Replicas != 3 || info.State.Msgs != 400 || info.State.LastSeq != 400 {
		t.Fatalf("stream: %d replicas, %d messages, last sequence %d; want 3, 400, 400", info.Config.Replicas, info.State.Msgs, info.State.LastSeq)
	}
	st := s.Stats()
	t.Logf("sink: %+v; stream: %d messages on %d replicas (leader %s)", st, info.State.Msgs, info.Config.Replicas, info.Cluster.Leader)
}
