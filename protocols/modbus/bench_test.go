package modbus

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

var fc3 = adu(1, 1, 3, 0, 0, 0, 10)

func BenchmarkNextFrame(b *testing.B) {
	stream := make([]byte, 0, 64*len(fc3))
	for range 64 {
		stream = append(stream, fc3...)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		for s := stream; len(s) > 0; {
			n, _ := NextFrame(s)
			s = s[n:]
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	pdu := fc3[HeaderLen:]
	b.ReportAllocs()
	for b.Loop() {
		if _, ex := ParseRequest(pdu); ex != 0 {
			b.Fatal(ex)
		}
	}
}

func BenchmarkAppendDeviceID(b *testing.B) {
	objs := []DeviceObject{{0, []byte("Siemens")}, {1, []byte("6ES7 216-2AD23-0XB0")}, {2, []byte("V2.2.1")},
		{4, []byte("CPU 226 DC/DC/DC")}, {5, []byte("CPU 226")}}
	buf := make([]byte, 0, MaxPDU)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendDeviceID(buf[:0], DevIDRegular, 0, objs)
	}
}

// loopConn serves the same batch of pipelined requests on every Read, n times.
type loopConn struct {
	fakeConn
	batch []byte
	n     int
}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	c.n--
	return copy(p, c.batch), nil
}
func (c *loopConn) Write(p []byte) (int, error) { return len(p), nil }

// discard is an emitter that drops events (the sensor's bus is non-blocking).
type discard struct{ n atomic.Int64 }

func (d *discard) Emit(e *protocols.Event) {
	d.n.Add(1)
	protocols.ReleaseEvent(e)
}

// BenchmarkHandleFC3 measures the server loop per FC3 request (10 registers), 64
// pipelined requests per read, without and with events.
func BenchmarkHandleFC3(b *testing.B) {
	for _, mode := range []string{"off", "all", "volume-control"} {
		events := mode != "off"
		name := "events=" + mode
		b.Run(name, func(b *testing.B) {
			svc, h := newTestService(b)
			var batch []byte
			for i := range 64 {
				batch = append(batch, adu(uint16(i), 1, 3, 0, 0, 0, 10)...)
			}
			var em protocols.Emitter
			if events {
				em = &discard{}
			}
			sess := testSession(h, em)
			if mode == "volume-control" { // the default, past the events it keeps
				sess.KeepEvents = 100
				svc.ServeConn(context.Background(), sess, &loopConn{batch: batch, n: 2})
			}
			b.ReportAllocs()
			b.ResetTimer()
			c := &loopConn{batch: batch, n: (b.N + 63) / 64}
			svc.ServeConn(context.Background(), sess, c)
		})
	}
}

// BenchmarkTCP16 runs FC3 (10 registers, unit 1) over 16 loopback connections, one
// request in flight per connection, client and server in this process. It reports req/s.
func BenchmarkTCP16(b *testing.B) {
	svc, h := newTestService(b)
	addr, stop := serveLoad(b, svc, h, "127.0.0.1:0")
	defer stop()
	const conns = 16
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			resp := make([]byte, 9+20)
			for left.Add(-1) >= 0 {
				if _, err := c.Write(fc3); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// serveLoad serves svc like the sensor does (TimeoutConn, events to a non-blocking
// emitter) until stop is called.
func serveLoad(tb testing.TB, svc *service, h *protocols.Host, addr string) (string, func()) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	em := &discard{}
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
				nc := &protocols.TimeoutConn{Conn: c, Idle: time.Minute, WriteTimeout: 10 * time.Second}
				svc.ServeConn(context.Background(), testSession(h, em), nc)
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}
