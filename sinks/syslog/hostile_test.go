package syslog

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestStalledCollector: a collector that accepts and never reads costs each write at most
// write_timeout; the events it did not take wait in the bounded backlog. One that sends
// data of its own (it should not) is still written to, its data never read into memory.
func TestStalledCollector(t *testing.T) {
	ln, err := net.Listen("tcp", rsyslogAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []net.Conn)
	defer func() {
		ln.Close()
		for _, c := range <-done {
			c.Close()
		}
	}()
	go func() {
		var conns []net.Conn
		defer func() { done <- conns }()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			c.Write([]byte(strings.Repeat("noise ", 1000)))
		}
	}()
	s := openSink(t, func(o *Options) {
		o.Transport, o.Address = "tcp", ln.Addr().String()
		o.MaxMessage, o.MaxValue = 65000, 0
		o.WriteTimeout, o.CloseTimeout = 100*time.Millisecond, 100*time.Millisecond
		o.ReconnectMin, o.ReconnectMax = time.Hour, time.Hour
		o.Backlog = 1 << 20
	})
	e := testEvent(2)
	e.Request = []byte(strings.Repeat("x", 60000))
	for range 1000 { // 60 MB: more than the loopback socket buffers hold
		s.Write(e)
		if strings.Contains(s.Stats().LastError, "i/o timeout") {
			break
		}
	}
	st := s.Stats()
	if !strings.Contains(st.LastError, "i/o timeout") || st.Backlog < 1 || st.BacklogSize > 1<<20 || st.Sent == 0 {
		t.Fatalf("stats %+v: want messages sent, then a write timeout, the rest in the bounded backlog", st)
	}
	s.Close()
}
