package syslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/sinks/internal/pipe"
)

// Sink sends events to a syslog collector.
type Sink struct {
	name  string
	enc   Encoder
	frame bool // octet counting (TCP, TLS)
	pipe  *pipe.Pipe
	msg   []byte
	buf   []byte
}

var (
	_ events.Sink    = (*Sink)(nil)
	_ events.Spooler = (*Sink)(nil)
)

// Open starts a sink with validated options; it connects on the first event.
func Open(o *Options, env events.Env) (*Sink, error) {
	host := o.Hostname
	if host == "" {
		host = env.SensorID
	}
	s := &Sink{
		name: fmt.Sprintf("syslog %s %s", o.Transport, o.Address),
		enc: Encoder{
			Facility: o.facility, Severity: o.classifier.Severity, Hostname: host, AppName: o.AppName,
			ProcID: strconv.Itoa(os.Getpid()), SDID: o.SDID, Message: o.Message,
			MaxValue: o.MaxValue, MaxMessage: o.MaxMessage,
		},
		frame: o.Transport != "udp",
	}
	dial, err := dialer(o)
	if err != nil {
		return nil, err
	}
	s.pipe = pipe.New(dial, pipe.Options{
		Name: s.name, DialTimeout: o.DialTimeout, BackoffMin: o.ReconnectMin, BackoffMax: o.ReconnectMax,
		MaxBacklog: o.Backlog, MaxBacklogMessages: o.BacklogMessages, CloseTimeout: o.CloseTimeout,
		Logger: env.Logger,
	})
	return s, nil
}

// Name implements events.Sink.
func (s *Sink) Name() string { return s.name }

// Write implements events.Sink: it sends e, or keeps it in the backlog while the collector
// is unreachable. An error reports events the backlog dropped.
func (s *Sink) Write(e *protocols.Event) error {
	s.msg = s.enc.Append(s.msg[:0], e)
	out := s.msg
	if s.frame {
		s.buf = AppendOctetCounted(s.buf[:0], s.msg)
		out = s.buf
	}
	return s.pipe.Send(out)
}

// Flush implements events.Sink: it sends the backlog when the collector is back.
func (s *Sink) Flush() error { return s.pipe.Flush() }

// Close implements events.Sink: it delivers the backlog within close_timeout and reports
// what it could not.
func (s *Sink) Close() error { return s.pipe.Close() }

// Spooled implements events.Spooler: the events waiting in the backlog.
func (s *Sink) Spooled() int64 { return int64(s.pipe.Backlog()) }

// Stats returns the sink's delivery counters.
func (s *Sink) Stats() pipe.Stats { return s.pipe.Stats() }

// dialer returns the function that connects to the collector.
func dialer(o *Options) (pipe.Dialer, error) {
	var cfg *tls.Config
	if o.Transport == "tls" {
		var err error
		if cfg, err = tlsConfig(o); err != nil {
			return nil, err
		}
	}
	network := "tcp"
	if o.Transport == "udp" {
		network = "udp"
	}
	wt := o.WriteTimeout
	return func(ctx context.Context) (pipe.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, o.Address)
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			if err := awaitRefusal(tc, o.TLSWait); err != nil {
				c.Close()
				return nil, err
			}
			c = tc
		}
		return &conn{c: c, wt: wt}, nil
	}, nil
}

func tlsConfig(o *Options) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(o.Address)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if o.ServerName != "" {
		cfg.ServerName = o.ServerName
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", o.CAFile)
		}
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file, key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// awaitRefusal reads from a fresh TLS connection for up to wait: a collector that refuses
// the sensor after the handshake (no client certificate, or one it does not accept: rsyslog
// checks after the handshake, and TLS 1.3 servers verify the client's certificate after the
// client has finished) sends an alert or closes, and the first message would be lost. Session
// tickets are taken in passing; a collector sends nothing else.
func awaitRefusal(tc *tls.Conn, wait time.Duration) error {
	if wait <= 0 {
		return nil
	}
	tc.SetReadDeadline(time.Now().Add(wait))
	defer tc.SetReadDeadline(time.Time{})
	var buf [512]byte
	for {
		_, err := tc.Read(buf[:])
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return nil
		case err != nil:
			return fmt.Errorf("the collector closed the connection after the TLS handshake (does it require a client certificate, or refuse this one?): %w", err)
		}
	}
}

// conn is one connection to the collector.
type conn struct {
	c  net.Conn
	wt time.Duration
}

func (c *conn) Send(msg []byte) error {
	c.c.SetWriteDeadline(time.Now().Add(c.wt))
	_, err := c.c.Write(msg)
	return err
}

// Alive peeks at the socket: a collector never sends, so an end of stream is its close (and
// over UDP a pending ICMP refusal is reported).
func (c *conn) Alive() bool { return !pipe.PeerClosed(c.c) }

func (c *conn) Close() error { return c.c.Close() }
