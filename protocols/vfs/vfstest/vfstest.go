// Package vfstest serves the file protocols (FTP, TFTP) in tests the way the sensor does,
// with the ephemeral endpoints the sensor would give them (passive data ports, transfer
// ports) on the host's own loopback address, and events recorded in memory.
package vfstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// Idle is the idle timeout of test connections and endpoints.
const Idle = 10 * time.Second

// Addr returns a random loopback address of 127.80.0.0/16, the range these tests own.
func Addr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 80, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// Opener opens endpoints on the session's local address, as the sensor does.
type Opener struct {
	TCP, UDP atomic.Int64 // endpoints opened
	Open     atomic.Int64 // endpoints not yet closed
}

// OpenTCP implements protocols.EndpointOpener.
func (o *Opener) OpenTCP(s *protocols.Session) (protocols.StreamEndpoint, error) {
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(s.Local.Addr(), 0)))
	if err != nil {
		return nil, fmt.Errorf("test endpoint: %w", err)
	}
	o.TCP.Add(1)
	o.Open.Add(1)
	ep := &tcpEP{o: o, ln: ln, s: s}
	ep.hook = s.NewCloseHook(func() { ep.Close() })
	if err := hook(ep.hook, ep); err != nil {
		return nil, err
	}
	return ep, nil
}

// OpenUDP implements protocols.EndpointOpener.
func (o *Opener) OpenUDP(s *protocols.Session) (protocols.PacketEndpoint, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.Local.Addr(), 0)))
	if err != nil {
		return nil, fmt.Errorf("test endpoint: %w", err)
	}
	o.UDP.Add(1)
	o.Open.Add(1)
	ep := &udpEP{o: o, c: c}
	ep.hook = s.NewCloseHook(func() { ep.Close() })
	if err := hook(ep.hook, ep); err != nil {
		return nil, err
	}
	return ep, nil
}

// hook closes ep with the session (its Close takes h back, as the sensor's endpoints do)
// and refuses it past the session's bound on close hooks: a service that leaks endpoints
// fails here as it would in the sensor.
func hook(h *protocols.CloseHook, ep io.Closer) error {
	if !h.Add() {
		ep.Close()
		return errors.New("test endpoint: too many endpoints for one session")
	}
	return nil
}

type tcpEP struct {
	o    *Opener
	ln   *net.TCPListener
	s    *protocols.Session
	mu   sync.Mutex
	conn net.Conn
	once sync.Once
	hook *protocols.CloseHook
}

func (e *tcpEP) Port() int { return e.ln.Addr().(*net.TCPAddr).Port }

func (e *tcpEP) Accept(ctx context.Context) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { e.ln.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	e.ln.SetDeadline(time.Now().Add(Idle))
	for range 16 {
		c, err := e.ln.AcceptTCP()
		if err != nil {
			e.Close()
			return nil, err
		}
		if c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap() != e.s.Remote.Addr().Unmap() {
			c.Close()
			continue
		}
		e.ln.Close()
		e.mu.Lock()
		e.conn = c
		e.mu.Unlock()
		return &epConn{TimeoutConn: protocols.TimeoutConn{Conn: c, Idle: Idle, WriteTimeout: Idle}, ep: e}, nil
	}
	e.Close()
	return nil, errors.New("test endpoint: too many foreign connections")
}

func (e *tcpEP) Close() error {
	e.once.Do(func() {
		e.ln.Close()
		e.mu.Lock()
		if e.conn != nil {
			e.conn.Close()
		}
		e.mu.Unlock()
		e.o.Open.Add(-1)
		e.hook.Remove()
	})
	return nil
}

type epConn struct {
	protocols.TimeoutConn
	ep *tcpEP
}

func (c *epConn) Close() error { return c.ep.Close() }

type udpEP struct {
	o      *Opener
	c      *net.UDPConn
	readDL atomic.Int64
	once   sync.Once
	hook   *protocols.CloseHook
}

func (e *udpEP) Port() int { return e.c.LocalAddr().(*net.UDPAddr).Port }

func (e *udpEP) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	dl := time.Now().Add(Idle)
	if t := e.readDL.Load(); t != 0 && t < dl.UnixNano() {
		dl = time.Unix(0, t)
	}
	e.c.SetReadDeadline(dl)
	n, from, err := e.c.ReadFromUDPAddrPort(b)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}

func (e *udpEP) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	return e.c.WriteToUDPAddrPort(b, to)
}

func (e *udpEP) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		e.readDL.Store(0)
	} else {
		e.readDL.Store(t.UnixNano())
	}
	return nil
}

func (e *udpEP) Close() error {
	e.once.Do(func() {
		e.c.Close()
		e.o.Open.Add(-1)
		e.hook.Remove()
	})
	return nil
}

// Server is a running test server.
type Server struct {
	Addr     netip.AddrPort
	Events   *protocoltest.Recorder
	Host     *protocols.Host
	Opener   *Opener
	Sessions atomic.Int64
}

func (srv *Server) session(proto, transport string, local, remote netip.AddrPort) *protocols.Session {
	n := srv.Sessions.Add(1)
	return &protocols.Session{
		ID: fmt.Sprintf("test-%d", n), Protocol: proto, Transport: transport, Local: local, Remote: remote,
		Host: srv.Host, Sensor: "test", Events: srv.Events, MaxPayload: 4096, Endpoints: srv.Opener,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func failPanic(t testing.TB) {
	if r := recover(); r != nil {
		t.Errorf("handler panic: %v\n%s", r, debug.Stack())
	}
}

// ServeTCP serves svc for h on addr:port ("127.80.1.2:0") until the test ends.
func ServeTCP(t testing.TB, proto string, svc protocols.StreamService, h *protocols.Host, addr string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Events: &protocoltest.Recorder{}, Host: h, Opener: &Opener{}}
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
				sess := srv.session(proto, protocols.TCP, c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort())
				sess.Open(ctx, nil)
				defer sess.Close()
				defer c.Close()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				defer failPanic(t)
				svc.ServeConn(ctx, sess, &protocols.TimeoutConn{Conn: c, Idle: Idle, WriteTimeout: Idle})
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return srv
}

// Option changes a session before it serves (the sensor's limits, say).
type Option func(*protocols.Session)

// Amplification sets the sessions' amplification bound, as the sensor's limits do.
func Amplification(f float64) Option { return func(s *protocols.Session) { s.Amplification = f } }

// ServeUDP serves svc for h on addr until the test ends, one session per source. Answers
// through reply are held to the session's amplification bound, as in the sensor.
func ServeUDP(t testing.TB, proto string, svc protocols.PacketService, h *protocols.Host, addr string, opts ...Option) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	uc := pc.(*net.UDPConn)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Addr: uc.LocalAddr().(*net.UDPAddr).AddrPort(), Events: &protocoltest.Recorder{}, Host: h, Opener: &Opener{}}
	sessions := map[netip.AddrPort]*protocols.Session{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			sess, ok := sessions[from]
			if !ok {
				sess = srv.session(proto, protocols.UDP, srv.Addr, from)
				for _, o := range opts {
					o(sess)
				}
				to := from
				sess.Open(ctx, func(b []byte) error { _, err := uc.WriteToUDPAddrPort(b, to); return err })
				sessions[from] = sess
			}
			sess.Received(n)
			func() {
				defer failPanic(t)
				reply, returned := protocoltest.PromptCheck(t, svc, func(resp []byte) {
					if ctx.Err() == nil && sess.TakeReply(len(resp)) {
						uc.WriteToUDPAddrPort(resp, from)
					}
				})
				defer returned()
				svc.ServePacket(ctx, sess, buf[:n], reply)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		uc.Close()
		<-done
		for _, s := range sessions {
			s.Close()
		}
	})
	return srv
}
