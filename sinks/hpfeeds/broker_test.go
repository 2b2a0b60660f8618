package hpfeeds

import (
	"bytes"
	"crypto/rand"
	"net"
	"path"
	"sync"
	"testing"
	"time"
)

// broker is an hpfeeds broker written for these tests from the protocol's description (no
// broker is packaged for Debian), answering as the hpfeeds project's broker does: it sends
// OP_INFO with its name and a fresh 4-byte nonce, checks OP_AUTH (SHA-1(nonce || secret) of a
// known ident; otherwise OP_ERROR "Authentication failed for <ident>" and a close), then
// takes OP_PUBLISH on channels the ident may publish to (OP_ERROR "Authkey not allowed to pub
// here. ident=…, chan=…" and a close for others), forwards publications to the subscribers
// of their channel (OP_SUBSCRIBE, OP_UNSUBSCRIBE), and answers a malformed message with
// OP_ERROR and a close. It listens on 127.75.52.1 (this package's own test
// address) at a port the kernel picks, or at a given one to come back after a stop.
type broker struct {
	t     *testing.T
	name  string
	users map[string]user
	ln    net.Listener

	mu    sync.Mutex
	conns map[net.Conn]bool
	subs  map[string][]net.Conn
	got   []publication
	cond  *sync.Cond
	wg    sync.WaitGroup
}

type user struct {
	secret  string
	publish []string // path.Match patterns of the channels it may publish to
}

// publication is one OP_PUBLISH the broker accepted.
type publication struct {
	Ident, Channel string
	Payload        []byte
}

const brokerAddr = "127.75.52.1"

func startBroker(t *testing.T, addr string, users map[string]user) *broker {
	t.Helper()
	if addr == "" {
		addr = brokerAddr + ":0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, name: "icsnare-test-broker", users: users, ln: ln, conns: map[net.Conn]bool{}, subs: map[string][]net.Conn{}}
	b.cond = sync.NewCond(&b.mu)
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) addr() string { return b.ln.Addr().String() }

// stop closes the listener and every connection, and waits for their goroutines.
func (b *broker) stop() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *broker) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = true
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(c)
	}
}

func (b *broker) send(c net.Conn, op byte, payload []byte) {
	msg, err := AppendMessage(nil, op, payload)
	if err != nil {
		b.t.Errorf("broker: %v", err)
		return
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(msg)
}

func (b *broker) serve(c net.Conn) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		for ch, list := range b.subs {
			b.subs[ch] = deleteConn(list, c)
		}
		b.mu.Unlock()
		c.Close()
	}()
	nonce := make([]byte, 4)
	rand.Read(nonce)
	info, err := AppendInfo(nil, b.name, nonce)
	if err != nil {
		b.t.Errorf("broker: %v", err)
		return
	}
	c.Write(info)
	var buf []byte
	op, p, buf, err := ReadMessage(c, buf, MaxMessage)
	if err != nil {
		return
	}
	if op != OpAuth {
		b.send(c, OpError, []byte("need authentication"))
		return
	}
	ident, hash, err := ParseAuth(p)
	u, known := b.users[ident]
	want := AuthHash(nonce, u.secret)
	if err != nil || !known || !bytes.Equal(hash, want[:]) {
		b.send(c, OpError, []byte("Authentication failed for "+ident))
		return
	}
	for {
		op, p, buf, err = ReadMessage(c, buf, MaxMessage)
		if err != nil {
			return
		}
		switch op {
		case OpPublish:
			pi, ch, data, err := ParsePublish(p)
			if err != nil {
				b.send(c, OpError, []byte("malformed publish"))
				return
			}
			if pi != ident {
				b.send(c, OpError, []byte("Invalid authkey in message, ident="+pi))
				return
			}
			if !allowed(u.publish, ch) {
				b.send(c, OpError, []byte("Authkey not allowed to pub here. ident="+pi+", chan="+ch))
				return
			}
			msg, _ := AppendPublish(nil, pi, ch, data)
			b.mu.Lock()
			b.got = append(b.got, publication{pi, ch, append([]byte(nil), data...)})
			subs := append([]net.Conn(nil), b.subs[ch]...)
			b.cond.Broadcast()
			b.mu.Unlock()
			for _, s := range subs {
				s.SetWriteDeadline(time.Now().Add(5 * time.Second))
				s.Write(msg)
			}
		case OpSubscribe, OpUnsubscribe:
			si, ch, err := ParseSubscribe(p)
			if err != nil || si != ident {
				b.send(c, OpError, []byte("malformed subscribe"))
				return
			}
			b.mu.Lock()
			b.subs[ch] = deleteConn(b.subs[ch], c)
			if op == OpSubscribe {
				b.subs[ch] = append(b.subs[ch], c)
			}
			b.mu.Unlock()
		default:
			b.send(c, OpError, []byte("unexpected opcode"))
			return
		}
	}
}

func allowed(patterns []string, ch string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, ch); ok {
			return true
		}
	}
	return false
}

func deleteConn(list []net.Conn, c net.Conn) []net.Conn {
	out := list[:0]
	for _, x := range list {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

// wait returns the first n publications, waiting for them (bounded).
func (b *broker) wait(n int) []publication {
	b.t.Helper()
	timer := time.AfterFunc(20*time.Second, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(20 * time.Second)
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.got) < n && time.Now().Before(deadline) {
		b.cond.Wait()
	}
	if len(b.got) < n {
		b.t.Fatalf("the broker received %d publications, want %d", len(b.got), n)
	}
	return append([]publication(nil), b.got...)
}

func (b *broker) publications() []publication {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]publication(nil), b.got...)
}

// waitSubscribed waits (bounded) until a client subscribed to channel.
func (b *broker) waitSubscribed(channel string) {
	b.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b.mu.Lock()
		n := len(b.subs[channel])
		b.mu.Unlock()
		if n > 0 {
			return
		}
	}
	b.t.Fatalf("nobody subscribed to %s", channel)
}
