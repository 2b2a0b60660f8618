package bacnet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/bacnet"
	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/sensor"
)

// plantProfile copies testdata/controller and adds extra analog values, so the object list
// needs several 480-octet segments.
func plantProfile(t *testing.T, extra int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plant")
	if err := os.CopyFS(dir, os.DirFS("testdata/controller")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "bacnet", "bacnet.xml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var objs strings.Builder
	for i := range extra {
		fmt.Fprintf(&objs, `<object name="ZONE-%d-TEMP"><properties><object_identifier>%d</object_identifier><object_type>Analog Value</object_type><present_value>%d.5</present_value><units>62</units></properties></object>`+"\n", i+1, 100+i, 19+i%5)
	}
	s := strings.Replace(string(b), "</object_list>", objs.String()+"</object_list>", 1)
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// running is a sensor serving a /24 of loopback addresses on the standard BACnet port.
type running struct {
	s      *sensor.Sensor
	net    string // "127.50.N"
	events string // the events file
	stop   func() // stops the sensor (flushing events); also run at cleanup
}

func (r *running) host(last int) string { return fmt.Sprintf("%s.%d", r.net, last) }

// startSensor runs the real sensor for the prefix 127.50.N.0/24 with profile dir on UDP
// 47808 (every 127/8 address is local, so no namespace is needed).
func startSensor(t *testing.T, dir string, mutate func(*sensor.Config)) *running {
	t.Helper()
	r := &running{net: fmt.Sprintf("127.50.%d", 2+rand.IntN(250)), events: filepath.Join(t.TempDir(), "events.jsonl")}
	cfg := sensor.DefaultConfig()
	cfg.Hosts = []sensor.HostRule{{Addresses: []string{r.net + ".0/24"}, Profile: dir}}
	cfg.Privileges.User = ""
	cfg.Metrics.Listen = ""
	cfg.Events.File = r.events
	cfg.Seed = "bacnet tests"
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var s *sensor.Sensor
	// The standard port is needed (nmap's bacnet-info runs on 47808 only). Another test
	// binary's kernel-picked port may hold it for a moment: try again, boundedly.
	for attempt := 0; ; attempt++ {
		var err error
		if s, err = sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			cancel()
			t.Fatal(err)
		}
		sink, err := sensor.OpenJSONSink(r.events, false)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		s.SetBus(sensor.NewBus(cfg.Events.Buffer, sink))
		err = s.Bind(ctx)
		if err == nil {
			break
		}
		s.Close()
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 50 {
			cancel()
			t.Fatalf("bind UDP 47808: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx, nil); close(done) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("sensor did not stop")
			}
		})
	}
	t.Cleanup(r.stop)
	r.s = s
	return r
}

// freeUDPPort asks the kernel for a free UDP port on addr.
func freeUDPPort(t *testing.T, addr string) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// nodeModules finds test/node/node_modules (npm ci --prefix test/node).
func nodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "node", "node_modules"))
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "@bacnet-js", "client", "package.json"))
	}
	if err != nil {
		if protocoltest.InCI() {
			t.Fatalf("@bacnet-js/client is not installed (run npm ci --prefix test/node): %v", err)
		}
		t.Skipf("@bacnet-js/client not installed: %v", err)
	}
	return dir
}

type nodeResult struct {
	IAm, IAmInRange, IAmOutOfRange []struct {
		Address                         string
		DeviceID                        int `json:"deviceId"`
		MaxApdu, Segmentation, VendorID int
	}
	Device       map[string][]map[string]any
	DeviceErrors map[string]string
	RPM          map[string][]struct {
		ID    int
		Value []map[string]any
	}
	Write         float64
	WriteDenied   string
	Refused       map[string]string
	DateAfterSync string
	COVChanges    []float64
	COV           *struct {
		Process       int
		Object        string
		TimeRemaining int
		Values        []int
	}
	Segmented []string
	RPMAll    int
	Error     string
}

// TestNodeBacnetClient drives @bacnet-js/client against a host of a /24 served by the
// sensor: Who-Is with and without range, ReadProperty of every device property,
// ReadPropertyMultiple ALL on each object, WriteProperty and read-back, and segmented
// answers.
func TestNodeBacnetClient(t *testing.T) {
	node := protocoltest.NeedTool(t, "node")
	mods := nodeModules(t)
	const extra = 120
	r := startSensor(t, plantProfile(t, extra), unbounded)
	host := r.host(10)
	port := freeUDPPort(t, "127.0.0.1")
	out, err := protocoltest.Run(t, 90*time.Second, node, filepath.Join("testdata", "bacnet_client.js"), mods, host, "127.0.0.1", strconv.Itoa(port))
	line := strings.TrimSpace(out)
	line = line[strings.LastIndex(line, "\n")+1:]
	var res nodeResult
	if jerr := json.Unmarshal([]byte(line), &res); jerr != nil {
		t.Fatalf("client output %q: %v (%v)", out, jerr, err)
	}
	if err != nil || res.Error != "" {
		t.Fatalf("client: %v %s", err, res.Error)
	}
	if len(res.IAm) != 1 || res.IAm[0].Address != host || res.IAm[0].VendorID != 999 || res.IAm[0].MaxApdu != 1476 || res.IAm[0].Segmentation != 0 {
		t.Fatalf("I-Am %+v", res.IAm)
	}
	if len(res.IAmInRange) != 1 || len(res.IAmOutOfRange) != 0 {
		t.Fatalf("Who-Is in range: %d I-Am, out of range: %d", len(res.IAmInRange), len(res.IAmOutOfRange))
	}
	if len(res.DeviceErrors) != 0 {
		t.Fatalf("device properties failed: %v", res.DeviceErrors)
	}
	for _, p := range []int{75, 77, 79, 112, 121, 120, 70, 44, 12, 98, 139, 97, 96, 76, 62, 107, 11, 73, 155, 56, 57, 58, 28} {
		if _, ok := res.Device[strconv.Itoa(p)]; !ok {
			t.Errorf("device property %d not read", p)
		}
	}
	if v := res.Device["70"]; len(v) != 1 || v[0]["value"] != "EX-BC 200" {
		t.Errorf("model name %v", v)
	}
	if v := res.Device["75"]; len(v) != 1 || v[0]["value"] != fmt.Sprintf("8,%d", res.IAm[0].DeviceID) {
		t.Errorf("object identifier %v", v)
	}
	if len(res.RPM) != 6+extra {
		t.Fatalf("ReadPropertyMultiple ALL on %d objects, want %d", len(res.RPM), 6+extra)
	}
	for obj, props := range res.RPM {
		if len(props) < 5 {
			t.Errorf("%s: ALL gave %d properties", obj, len(props))
		}
	}
	if res.Write != 21.5 {
		t.Errorf("read back %v after writing 21.5", res.Write)
	}
	if !strings.Contains(res.WriteDenied, "Class:2 - Code:40") {
		t.Errorf("writing vendor-name: %q, want write-access-denied", res.WriteDenied)
	}
	for name, want := range map[string]string{"dcc": "Class:4 - Code:26", "reinitialize": "Class:4 - Code:26",
		"subscribeCov": "accepted", "unknownObject": "Class:1 - Code:31"} {
		if !strings.Contains(res.Refused[name], want) {
			t.Errorf("%s: %q, want %q", name, res.Refused[name], want)
		}
	}
	if c := res.COV; c == nil || c.Process != 7 || c.Object != "0,1" || c.TimeRemaining < 55 || c.TimeRemaining > 60 ||
		fmt.Sprint(c.Values) != "[85 111]" {
		t.Errorf("COV notification after SubscribeCOV: %+v", c)
	}
	if len(res.COVChanges) != 2 || res.COVChanges[0] != 21.5 || res.COVChanges[1] != 30 {
		t.Errorf("COV notifications of analog-value,2 around a write of 30: %v, want [21.5 30]", res.COVChanges)
	}
	if !strings.HasPrefix(res.DateAfterSync, "2031-05-1") {
		t.Errorf("local-date after UTC-TimeSynchronization to 2031-05-17: %s", res.DateAfterSync)
	}
	if len(res.Segmented) != 6+extra || res.Segmented[6+extra-1] != fmt.Sprintf("2,%d", 100+extra-1) {
		t.Errorf("segmented object list: %d entries", len(res.Segmented))
	}
	if res.RPMAll != 6+extra {
		t.Errorf("ReadPropertyMultiple of every object: %d results", res.RPMAll)
	}
	t.Logf("I-Am %+v; model %v; %d objects; object list in segments of 480 octets: %d entries", res.IAm[0], res.Device["70"], len(res.RPM), len(res.Segmented))

	// The sensor's events record the write with its object, property, priority and value.
	r.stop()
	b, err := os.ReadFile(r.events)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("event %q: %v", l, err)
		}
		if e["event_type"] == "bacnet.request" && e["service"] == "write-property" && e["object"] == "analog-value,2" &&
			e["property"] == 85.0 && e["priority"] == 8.0 && e["value"] == "4441ac0000" && e["dst_ip"] == host {
			found++
			t.Logf("write event: %s", l)
		}
	}
	if found != 1 {
		t.Fatalf("%d write events for analog-value,2", found)
	}
}

// TestNmapBacnetInfo runs nmap's bacnet-info script against a host of a /24.
func TestNmapBacnetInfo(t *testing.T) {
	nmap := protocoltest.NeedTool(t, "nmap")
	protocoltest.NeedRoot(t) // -sU
	r := startSensor(t, "testdata/controller", nil)
	host := r.host(77)
	out, err := protocoltest.Run(t, 90*time.Second, nmap, "-Pn", "-n", "-sU", "-p", "47808", "--script", "bacnet-info", host)
	if err != nil {
		t.Fatalf("nmap: %v", err)
	}
	for _, want := range []string{
		"47808/udp open",
		"Vendor ID: Unknown Vendor Number (999)",
		"Vendor Name: Example Controls",
		"Firmware: 4.2.1",
		"Application Software: AHU sequence 2.3",
		"Model Name: EX-BC 200",
		"Object Name: BAC-",
		"Description: Air handling unit 1",
		"Location: ",
		"Object-identifier: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nmap output lacks %q", want)
		}
	}
	// (nmap's own bind to port 47808 fails while the sensor holds it: "NSOCK ERROR … Bind
	// to 0.0.0.0:47808 failed"; the script goes on from another port, as it says it does.)
	if strings.Contains(out, "Script execution failed") || strings.Contains(out, "bacnet-info: ERROR") {
		t.Error("bacnet-info reported an error")
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// unbounded lifts the sensor's amplification bound for BACnet, as a deployment that wants
// segmented answers and ReadPropertyMultiple ALL for unverified sources does
// (limits.udp_amplification_per_protocol.bacnet = 0).
func unbounded(c *sensor.Config) {
	c.Limits.UDPAmplificationPer = map[string]float64{bacnet.Name: 0}
}
