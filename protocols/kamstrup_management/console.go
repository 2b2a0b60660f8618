package kamstrupmgmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/icsnare/icsnare/profiles"
	"github.com/icsnare/icsnare/protocols"
	kamstrupmeter "github.com/icsnare/icsnare/protocols/kamstrup_meter"
)

// Event types.
const (
	evCommand = Name + ".command" // one line and the module's reply
	evOverrun = Name + ".overrun" // lines dropped because a client sent many at once
)

// Bounds and timing.
const (
	replyDelay = 250 * time.Millisecond // Conpot's delay before every reply
	maxLine    = 1024                   // longer lines are dropped and answered as unknown
	readBuf    = 1024
	maxBurst   = 32 // lines of one read that are answered; the rest are dropped
)

// service serves the console for every host of a profile.
type service struct {
	sleep func(ctx context.Context, d time.Duration) bool
	now   func() time.Time
}

var (
	_ protocols.StreamService    = (*service)(nil)
	_ protocols.RequestTimeouter = (*service)(nil)
)

func newService() *service { return &service{sleep: protocols.Sleep, now: time.Now} }

// Endpoints implements protocols.Service.
func (s *service) Endpoints() []protocols.Endpoint {
	return []protocols.Endpoint{{Transport: protocols.TCP, Port: Port}}
}

// defaults are the module's settings where a template leaves a key out (Conpot's
// kamstrup_382 values).
var defaults = map[string]string{
	"software_version": "5.5 (E5)", "access_control_status": "DISABLED",
	"access_control_1": "0.0.0.0", "access_control_2": "0.0.0.0", "access_control_3": "0.0.0.0",
	"access_control_4": "0.0.0.0", "access_control_5": "0.0.0.0", "device_name": "",
	"nameserver_1": "0.0.0.0", "nameserver_2": "0.0.0.0", "nameserver_3": "0.0.0.0",
	"mac_address": "00:13:EA:00:00:00", "use_dhcp": "YES", "ip_addr": "192.168.1.210",
	"ip_gateway": "192.168.1.1", "ip_subnet": "255.255.255.0", "ip_addr_dhcp": "192.168.0.1",
	"ip_gateway_dhcp": "192.168.0.254", "ip_subnet_dhcp": "255.255.255.0",
	"kap_a_server_hostname": "0 - none", "kap_a_server_ip": "0.0.0.0", "kap_a_server_port": "50",
	"kap_b_server_ip": "0.0.0.0", "kap_b_server_port": "50",
	"channel_a_meternumber": "", "channel_b_meternumber": "",
	"channel_a_port": "1025", "channel_b_port": "1026", "kap_ack_server": "NO", "kap_local_port": "800",
	"alarm_server_status": "DISABLED", "alarm_server_ip": "0.0.0.0", "alarm_server_port": "4000",
	"kap_server_lookup": "0 - none", "software_watchdog": "3600", "kap_missing_warning": "60",
	"keep_alive_timer": "10", "serial_settings_a": "Auto", "serial_settings_b": "115200,8,E,1",
	"channel_a_connect_socket": "0 - None", "channel_b_connect_socket": "0 - None",
}

// aliases are keys Conpot's template spells differently from its code.
var aliases = map[string]string{"software_watchdog": "software_watchdong"}

// databusStore is a host's databus as the console's Store.
type databusStore struct {
	db   *profiles.Databus
	seed uint64
}

// Get implements Store.
func (d databusStore) Get(key string) string {
	v, ok := d.lookup(key)
	if !ok {
		v = defaults[key]
	}
	if key == "mac_address" {
		v = HostMAC(v, d.seed)
	}
	return v
}

func (d databusStore) lookup(key string) (string, bool) {
	if d.db == nil {
		return "", false
	}
	if v, err := d.db.GetString(key); err == nil {
		return v, true
	}
	if a, ok := aliases[key]; ok {
		if v, err := d.db.GetString(a); err == nil {
			return v, true
		}
	}
	return "", false
}

// Set implements Store.
func (d databusStore) Set(key, value string) {
	if d.db != nil {
		d.db.Set(key, value)
	}
}

// HostMAC completes a MAC whose device part is zero (Conpot's 00:13:EA:00:00:00, the
// Kamstrup prefix with a placeholder) with three bytes from the host's seed, so hosts do
// not share the template's one address; any other value is returned as is.
func HostMAC(mac string, seed uint64) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || hw[3]|hw[4]|hw[5] != 0 {
		return mac
	}
	x := seed * 0x9e3779b97f4a7c15
	x ^= x >> 29
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", hw[0], hw[1], hw[2], byte(x>>16), byte(x>>8), byte(x)|1)
}

// Banner is what the module sends on connect.
func Banner(st Store) string {
	return "\r\nWelcome...\r\nConnected to [" + st.Get("mac_address") + "]\r\n"
}

// ServeConn implements protocols.StreamService.
func (s *service) ServeConn(ctx context.Context, sess *protocols.Session, nc net.Conn) {
	st := databusStore{}
	if h := sess.Host; h != nil {
		st = databusStore{db: h.Databus, seed: h.Seed}
	}
	if _, err := nc.Write([]byte(Banner(st))); err != nil {
		return
	}
	var lr LineReader
	buf := make([]byte, readBuf)
	for ctx.Err() == nil {
		n, rerr := nc.Read(buf)
		lines := lr.Feed(buf[:n])
		if len(lines) > maxBurst {
			// The module's input buffer is small: what a client pastes past a screenful is
			// lost, so a flood of lines cannot queue minutes of reply delays.
			sess.EmitText(evOverrun, nil, nil, protocols.F("dropped_lines", len(lines)-maxBurst))
			sess.Request("overrun", true)
			lines = lines[:maxBurst]
		}
		for _, l := range lines {
			if !s.line(ctx, sess, nc, st, l) {
				return
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, net.ErrClosed) && !errors.Is(rerr, os.ErrDeadlineExceeded) {
				logger(sess).Debug("kamstrup_management: connection ends", "err", rerr)
			}
			return
		}
	}
}

func logger(sess *protocols.Session) *slog.Logger {
	if sess.Log != nil {
		return sess.Log
	}
	return slog.Default()
}

// line answers one line; false ends the connection.
func (s *service) line(ctx context.Context, sess *protocols.Session, nc net.Conn, st Store, l Line) bool {
	var r Result
	if l.TooLong {
		r = Result{Reply: notFound, Cmd: "unknown"}
	} else {
		r = Respond(st, string(l.Text))
	}
	if r.Reboot && sess.Host != nil {
		sess.Host.Databus.Set("reboot_signal", int64(1))
		kamstrupmeter.Reboot(sess.Host, s.now())
	}
	kind := r.Cmd
	if kind == "" {
		kind = "empty"
	}
	var resp []byte
	if !r.Close {
		resp = []byte(r.Reply)
	}
	sess.EmitText(evCommand, l.Raw, resp, protocols.F("command", kind))
	sess.Request(kind, kind == "unknown")
	if !s.sleep(ctx, replyDelay) || r.Close {
		return false
	}
	if r.Reply == "" {
		return true
	}
	_, err := nc.Write(resp)
	return err == nil
}

// Line is one line typed at the console.
type Line struct {
	Text    []byte // without the line ending and telnet commands
	Raw     []byte // as received, clipped to maxLine bytes
	TooLong bool   // the line was longer than maxLine and was dropped
}

// LineReader splits the console's input into lines ending in CR, LF or CR LF, dropping
// telnet commands (IAC sequences). It holds at most maxLine bytes.
type LineReader struct {
	raw, text []byte
	over      bool
	skipLF    bool        // the last line ended with CR: an LF right after it belongs to it
	telnet    telnetState // where in a telnet command the input is
}

// telnetState tracks telnet commands (RFC 854) in the input.
type telnetState uint8

const (
	tsData   telnetState = iota
	tsIAC                // after IAC: a command byte
	tsOption             // after WILL, WONT, DO, DONT: an option byte
	tsSub                // inside a subnegotiation (IAC SB … IAC SE)
	tsSubIAC             // IAC inside a subnegotiation
)

// Telnet bytes.
const (
	tnIAC = 255
	tnSB  = 250
	tnSE  = 240
)

// skipTelnet consumes b when it belongs to a telnet command.
func (r *LineReader) skipTelnet(b byte) bool {
	switch r.telnet {
	case tsIAC:
		switch {
		case b == tnIAC: // IAC IAC, a literal 0xFF: no text for this console either
			r.telnet = tsData
		case b == tnSB:
			r.telnet = tsSub
		case b >= 251:
			r.telnet = tsOption
		default:
			r.telnet = tsData
		}
		return true
	case tsOption:
		r.telnet = tsData
		return true
	case tsSub:
		if b == tnIAC {
			r.telnet = tsSubIAC
		}
		return true
	case tsSubIAC:
		r.telnet = tsSub
		if b == tnSE {
			r.telnet = tsData
		}
		return true
	}
	if b == tnIAC {
		r.telnet = tsIAC
		return true
	}
	return false
}

// Feed returns the lines p completes.
func (r *LineReader) Feed(p []byte) []Line {
	var out []Line
	for _, b := range p {
		if r.skipLF {
			r.skipLF = false
			if b == '\n' {
				if n := len(out); n > 0 && len(out[n-1].Raw) < maxLine {
					out[n-1].Raw = append(out[n-1].Raw, b)
				}
				continue
			}
		}
		if len(r.raw) < maxLine {
			r.raw = append(r.raw, b)
		}
		if r.skipTelnet(b) {
			continue
		}
		switch {
		case b == '\r' || b == '\n':
			out = append(out, Line{Text: bytes.Clone(r.text), Raw: bytes.Clone(r.raw), TooLong: r.over})
			r.raw, r.text, r.over = r.raw[:0], r.text[:0], false
			r.skipLF = b == '\r'
			continue
		case b == 0:
			continue
		}
		if len(r.text) >= maxLine {
			r.over = true
			continue
		}
		r.text = append(r.text, b)
	}
	return out
}

// Pending reports whether part of a line is buffered.
func (r *LineReader) Pending() bool { return len(r.raw) > 0 }
