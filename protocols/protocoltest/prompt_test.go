package protocoltest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// lateService answers "x" after ServePacket returned: once the next request ("y") has
// come, which the harness serves only after it is done with "x". prompt says whether it
// claims to reply promptly.
type lateService struct {
	prompt        bool
	release, done chan struct{}
}

func (s *lateService) Endpoints() []protocols.Endpoint { return nil }
func (s *lateService) RepliesPromptly() bool           { return s.prompt }
func (s *lateService) ServePacket(ctx context.Context, sess *protocols.Session, req []byte, reply func([]byte)) {
	switch string(req) {
	case "x":
		go func() {
			defer close(s.done)
			<-s.release
			reply([]byte("late"))
		}()
	case "y":
		close(s.release)
	}
}

// errorRecorder is a testing.TB that keeps what Errorf reports.
type errorRecorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestPromptReplierCheckedLate: the harness fails a test whose service says it replies
// promptly and replies after ServePacket returned, and lets a service that does not say
// so answer late.
func TestPromptReplierCheckedLate(t *testing.T) {
	for _, prompt := range []bool{true, false} {
		t.Run(fmt.Sprint("prompt=", prompt), func(t *testing.T) {
			rec := &errorRecorder{TB: t}
			svc := &lateService{prompt: prompt, release: make(chan struct{}), done: make(chan struct{})}
			srv := ServeUDP(rec, "late", svc, nil, "127.0.0.1:0")
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.Addr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, req := range []string{"x", "y"} {
				if _, err := c.Write([]byte(req)); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-svc.done:
			case <-time.After(5 * time.Second):
				t.Fatal("the service never replied")
			}
			rec.mu.Lock()
			errs := rec.errs
			rec.mu.Unlock()
			if prompt && len(errs) != 1 {
				t.Fatalf("a prompt replier answering late: errors %q, want one", errs)
			}
			if !prompt {
				if len(errs) != 0 {
					t.Fatalf("errors %q for a service that may answer late", errs)
				}
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				buf := make([]byte, 16)
				if n, err := c.Read(buf); err != nil || string(buf[:n]) != "late" {
					t.Fatalf("late answer %q, %v", buf[:n], err)
				}
			}
		})
	}
}
