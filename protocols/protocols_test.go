package protocols

import (
	"net"
	"testing"
	"time"
)

type collect struct{ events []*Event }

func (c *collect) Emit(e *Event) { c.events = append(c.events, e) }

func TestSessionEmit(t *testing.T) {
	c := &collect{}
	s := &Session{ID: "x", Protocol: "modbus", Events: c, MaxPayload: 4}
	req := []byte{1, 2, 3, 4, 5, 6}
	cases := []struct {
		typ, want string
		req, resp []byte
		wreq      []byte
	}{
		{"request", "modbus.request", req, []byte{9}, []byte{1, 2, 3, 4}},
		{"modbus.request", "modbus.request", nil, nil, nil},
		{"modbusx.odd", "modbus.modbusx.odd", []byte{}, nil, []byte{}},
	}
	for _, tc := range cases {
		s.Emit(tc.typ, tc.req, tc.resp, F("k", 1))
		e := c.events[len(c.events)-1]
		if e.Type != tc.want || string(e.Request) != string(tc.wreq) || (tc.wreq == nil) != (e.Request == nil) {
			t.Errorf("%s: type %q request %v", tc.typ, e.Type, e.Request)
		}
		if tc.resp != nil && string(e.Response) != string(tc.resp) {
			t.Errorf("%s: response %v", tc.typ, e.Response)
		}
	}
	req[0] = 99
	if c.events[0].Request[0] != 1 {
		t.Fatal("event shares the caller's buffer")
	}
	if s.Requests() != 0 {
		t.Fatal("Emit counted a request")
	}
}

func TestTimeoutConnHonoursEarlierDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &TimeoutConn{Conn: a, Idle: time.Hour, WriteTimeout: time.Hour}
	c.SetReadDeadline(time.Now().Add(-time.Second)) // already passed: Read must fail at once
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded past the handler's deadline")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("want a timeout, got %v", err)
	}
	c2 := &TimeoutConn{Conn: b, Idle: time.Nanosecond}
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded past the idle timeout")
	}
}
