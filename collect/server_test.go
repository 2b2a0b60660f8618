package collect

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// startServer runs nats-server -js on an address of 127.77.0.0/16 (a port the kernel
// picked) with its own store, and returns its URL.
func startServer(t *testing.T) string {
	t.Helper()
	bin := protocoltest.NeedTool(t, "nats-server")
	ln, err := net.Listen("tcp", fmt.Sprintf("127.77.%d.%d:0", 1+rand.IntN(250), 1+rand.IntN(250)))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-a", host, "-p", port, "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return "nats://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen on %s", addr)
		}
	}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestCollectIsIdempotentAndSkipsHostileMessages: a message the stream stored twice (its
// duplicate window had passed) is written once, also by a restarted collector; a body that
// is not JSON is acknowledged and not written; a subject's sensor token cannot leave the
// output directory.
func TestCollectIsIdempotentAndSkipsHostileMessages(t *testing.T) {
	url := startServer(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "C", Subjects: []string{"icsnare.>"},
		Duplicates: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	pub := func(subject, id, body string) {
		t.Helper()
		m := nats.NewMsg(subject)
		if id != "" {
			m.Header.Set(jetstream.MsgIDHeader, id)
		}
		m.Data = []byte(body)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// storeAgain publishes an id the stream already holds until its duplicate window has
	// let go of it and the stream stores it a second time
	storeAgain := func(id, body string) {
		t.Helper()
		for {
			m := nats.NewMsg("icsnare.plant-1.modbus.request")
			m.Header.Set(jetstream.MsgIDHeader, id)
			m.Data = []byte(body)
			ack, err := js.PublishMsg(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			if !ack.Duplicate {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ev := func(id string) string {
		return `{"timestamp":"2026-11-29T10:00:00Z","event_type":"modbus.request","event_id":"` + id + `"}`
	}
	for i := range 5 {
		pub("icsnare.plant-1.modbus.request", fmt.Sprintf("plant-1-%d", i), ev(fmt.Sprintf("plant-1-%d", i)))
	}
	pub("icsnare.plant-1.modbus.request", "bad-1", `{"not json`)
	pub(`icsnare.a/\b.modbus.request`, "evil-1", ev("evil-1"))
	pub("icsnare.short", "short-1", ev("short-1"))
	storeAgain("plant-1-3", ev("plant-1-3"))
	pub("icsnare.plant-1.modbus.request", "", "{\n\"timestamp\": \"2026-11-30T00:00:01Z\"\n}")

	out := t.TempDir()
	o := Options{Stream: "C", Out: out, Batch: 4, MaxWait: 200 * time.Millisecond}
	o.Conn.Servers = []string{url}
	run := func(until func() bool) Stats {
		t.Helper()
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		var st Stats
		var rerr error
		go func() { st, rerr = Run(rctx, o); close(done) }()
		for !until() {
			select {
			case <-done:
				t.Fatalf("Run returned early: %v", rerr)
			case <-ctx.Done():
				t.Fatal("timed out")
			case <-time.After(50 * time.Millisecond):
			}
		}
		time.Sleep(300 * time.Millisecond) // a batch in flight is finished, then Run stops
		rcancel()
		<-done
		if rerr != nil {
			t.Fatal(rerr)
		}
		return st
	}
	day := filepath.Join(out, "plant-1", "2026-11-29.jsonl")
	consumerDone := func() bool {
		info, err := js.Stream(ctx, "C")
		if err != nil {
			return false
		}
		c, err := info.Consumer(ctx, DefaultDurable)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.Delivered.Stream == info.CachedInfo().State.LastSeq
	}
	st := run(consumerDone)
	if st.Written != 8 || st.Duplicates != 1 || st.Invalid != 1 {
		t.Fatalf("stats %+v, want 8 written, 1 duplicate, 1 invalid", st)
	}
	if got := lines(t, day); len(got) != 5 {
		t.Fatalf("%s holds %d lines, want 5:\n%s", day, len(got), strings.Join(got, "\n"))
	}
	if got := lines(t, filepath.Join(out, "plant-1", "2026-11-30.jsonl")); len(got) != 1 || got[0] != `{"timestamp":"2026-11-30T00:00:01Z"}` {
		t.Fatalf("the multi-line body became %q", got)
	}
	ents, _ := os.ReadDir(out)
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if strings.Join(dirs, ",") != "_unknown,a__b,plant-1" {
		t.Fatalf("output directories %v, want _unknown, a__b and plant-1", dirs)
	}

	// one collector per directory
	lock, err := os.OpenFile(filepath.Join(out, lockFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second collector on the same directory: %v", err)
	}
	lock.Close()

	// a restarted collector remembers what it wrote
	storeAgain("plant-1-4", ev("plant-1-4"))
	pub("icsnare.plant-1.modbus.request", "plant-1-5", ev("plant-1-5"))
	st = run(consumerDone)
	if st.Written != 1 || st.Duplicates != 1 {
		t.Fatalf("restarted: %+v, want 1 written and 1 duplicate", st)
	}
	got := lines(t, day)
	if len(got) != 6 || !strings.Contains(got[5], "plant-1-5") {
		t.Fatalf("%s after the restart:\n%s", day, strings.Join(got, "\n"))
	}
}
