package main

import (
	"encoding/binary"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/icsnare/icsnare/protocols/s7comm"
)

// TestModbusOverPipe: two FC3 requests in one write get two answers in one write, with
// the transaction ids echoed and the requested register count; other functions get
// exception 1.
func TestModbusOverPipe(t *testing.T) {
	srv, cli := net.Pipe()
	defer cli.Close()
	go func() { defer srv.Close(); serveModbus(srv) }()
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	req := func(tid uint16, fc byte, qty uint16) []byte {
		b := []byte{0, 0, 0, 0, 0, 6, 1, fc, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(b, tid)
		binary.BigEndian.PutUint16(b[10:], qty)
		return b
	}
	go cli.Write(append(append(req(7, 3, 10), req(8, 3, 2)...), req(9, 5, 0)...))
	want := [][]byte{
		append([]byte{0, 7, 0, 0, 0, 23, 1, 3, 20}, make([]byte, 20)...),
		append([]byte{0, 8, 0, 0, 0, 7, 1, 3, 4}, make([]byte, 4)...),
		{0, 9, 0, 0, 0, 3, 1, 0x85, 1},
	}
	for _, w := range want {
		got := make([]byte, len(w))
		if _, err := io.ReadFull(cli, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(w) {
			t.Fatalf("got % x, want % x", got, w)
		}
	}
}

// TestS7Answers checks the canned answers with the sensor's own S7 codec.
func TestS7Answers(t *testing.T) {
	cr := []byte{0x03, 0x00, 0x00, 0x16, 0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00,
		0xc0, 0x01, 0x0a, 0xc1, 0x02, 0x01, 0x00, 0xc2, 0x02, 0x01, 0x02}
	cc := s7Answer(nil, cr)
	if n, err := s7comm.ParseTPKTHeader(cc[:4]); err != nil || n != len(cc) {
		t.Fatalf("CC TPKT: %d %v", n, err)
	}
	if tp, err := s7comm.ParseCOTP(cc[4:]); err != nil || tp.Code != 0xd0 {
		t.Fatalf("CC: %+v %v", tp, err)
	}
	setup := []byte{0x03, 0x00, 0x00, 0x19, 0x02, 0xf0, 0x80, 0x32, 0x01, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x08, 0x00, 0x00, 0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xf0}
	read := []byte{0x03, 0x00, 0x00, 0x1f, 0x02, 0xf0, 0x80,
		0x32, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x0e, 0x00, 0x00,
		0x04, 0x01, 0x12, 0x0a, 0x10, 0x02, 0x00, 0x0a, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00}
	for _, c := range []struct {
		name     string
		req      []byte
		ref      uint16
		dataLen  int
		function byte
	}{{"setup", setup, 1, 0, 0xf0}, {"read var", read, 2, 14, 0x04}} {
		a := s7Answer(nil, c.req)
		if n, err := s7comm.ParseTPKTHeader(a[:4]); err != nil || n != len(a) {
			t.Fatalf("%s: TPKT %d %v (% x)", c.name, n, err, a)
		}
		p, err := s7comm.ParsePDU(a[7:])
		if err != nil {
			t.Fatalf("%s: %v (% x)", c.name, err, a)
		}
		if p.ROSCTR != 3 || p.PDURef != c.ref || p.ErrClass != 0 || p.ErrCode != 0 || p.Param[0] != c.function || len(p.Data) != c.dataLen {
			t.Fatalf("%s: %+v", c.name, p)
		}
	}
	if s7Answer(nil, []byte{0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80}) != nil {
		t.Fatal("a DT without S7comm was answered")
	}
}

// TestSNMPAnswer: the GET turned into a GetResponse decodes with gosnmp, same id.
func TestSNMPAnswer(t *testing.T) {
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "public"}
	req := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetRequest, RequestID: 4711,
		Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.Null}}}
	b, err := req.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.SnmpDecodePacket(snmpAnswer(b, nil))
	if err != nil || p.PDUType != gosnmp.GetResponse || p.RequestID != 4711 {
		t.Fatalf("%+v %v", p, err)
	}
	if snmpAnswer([]byte{0x30, 0x03, 0x02, 0x01, 0x01}, nil) != nil || snmpAnswer(nil, nil) != nil {
		t.Fatal("a truncated message was answered")
	}
}

func TestBACnetAnswer(t *testing.T) {
	req := []byte{0x81, 0x0a, 0x00, 0x11, 0x01, 0x04, 0x00, 0x05, 0x2a, 0x0c, 0x0c, 0x02, 0x3f, 0xff, 0xff, 0x19, 0x4d}
	a := bacnetAnswer(req, nil)
	if len(a) < 8 || a[6]>>4 != 3 || a[7] != 0x2a || int(binary.BigEndian.Uint16(a[2:])) != len(a) {
		t.Fatalf("% x", a)
	}
	if bacnetAnswer(req[:8], nil) != nil {
		t.Fatal("a truncated request was answered")
	}
}

// TestHTTPHandlerConnection: the ceiling closes after each answer when the sensor's
// captured headers do (HTTP/1.0 without keep-alive, Connection: close) and keeps the
// connection otherwise; the sensor's other header lines are copied.
func TestHTTPHandlerConnection(t *testing.T) {
	dir := t.TempDir()
	body := filepath.Join(dir, "body")
	os.WriteFile(body, []byte("<html>x</html>"), 0o644)
	for _, tc := range []struct {
		headers string
		close   bool
	}{
		{"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n", true},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Type: text/html\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n", true},
	} {
		hf := filepath.Join(dir, "headers")
		os.WriteFile(hf, []byte(tc.headers), 0o644)
		h, err := httpHandler(body, hf)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/index.html", nil))
		if got := rec.Header().Get("Connection") == "close"; got != tc.close {
			t.Errorf("%q: closes %v, want %v", tc.headers, got, tc.close)
		}
		if rec.Header().Get("Content-Type") != "text/html" || rec.Body.String() != "<html>x</html>" {
			t.Errorf("%q: answer %v %q", tc.headers, rec.Header(), rec.Body.String())
		}
	}
}

// deadlineConn counts the read deadlines set on it; its reads return one byte.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) Read(b []byte) (int, error)        { return 1, nil }
func (c *deadlineConn) SetReadDeadline(t time.Time) error { c.set = append(c.set, t); return nil }

// TestIdleConnArmsLazily: -idle sets a read deadline on the first read and keeps it while
// it is more than a quarter of the timeout away.
func TestIdleConnArmsLazily(t *testing.T) {
	dc := &deadlineConn{}
	c := &idleConn{Conn: dc, idle: time.Hour}
	before := time.Now()
	for range 100 {
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if len(dc.set) != 1 || dc.set[0].Before(before.Add(time.Hour)) || dc.set[0].After(time.Now().Add(time.Hour)) {
		t.Fatalf("deadlines %v for 100 reads, want one an hour after the first", dc.set)
	}
}
