// Package syslog is the [sinks.syslog] event sink: every event as an RFC 5424 message, its
// fields in structured data, sent over UDP (RFC 5426), TCP with octet counting (RFC 6587)
// or TLS (RFC 5425), with reconnection and a bounded backlog. See README.md.
package syslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/icsnare/icsnare/events"
)

// Name is the sink kind: [sinks.syslog].
const Name = "syslog"

func init() { events.Register(kind{}) }

type kind struct{}

func (kind) Name() string { return Name }

// NewOptions implements events.Kind.
func (kind) NewOptions() any { return DefaultOptions() }

// Open implements events.Kind.
func (kind) Open(_ context.Context, opts any, env events.Env) (events.Sink, error) {
	o, _ := opts.(*Options)
	if o == nil {
		o = DefaultOptions()
		if err := o.Validate(); err != nil {
			return nil, err
		}
	}
	return Open(o, env)
}

// Options are the keys of [sinks.syslog].
type Options struct {
	// Address is the collector, host:port.
	Address string `toml:"address"`
	// Transport is "udp", "tcp" or "tls".
	Transport string `toml:"transport"`
	// Facility is a name (local0 …) or a number 0–23.
	Facility string `toml:"facility"`
	// Severity is the severity of events no rule below matches (reads, mostly).
	Severity string `toml:"severity"`
	// Notice and Warning list the rules ("type-pattern [field=value]") of events sent as
	// notice (writes) and warning (state changes).
	Notice  []string `toml:"notice"`
	Warning []string `toml:"warning"`
	// Hostname is HOSTNAME; "" is the sensor's id.
	Hostname string `toml:"hostname"`
	// AppName is APP-NAME.
	AppName string `toml:"app_name"`
	// SDID is the SD-ID of the element carrying the event: name@private-enterprise-number.
	SDID string `toml:"sd_id"`
	// Message is MSG: "text", "json" or "none".
	Message string `toml:"message"`
	// MaxMessage bounds a message in bytes (0: 2048 over UDP, 8192 over TCP and TLS);
	// MaxValue one PARAM-VALUE (0: no bound of its own).
	MaxMessage int `toml:"max_message"`
	MaxValue   int `toml:"max_value"`
	// CAFile verifies the collector's certificate (TLS; "" is the system's roots);
	// CertFile and KeyFile are the sensor's client certificate; ServerName the name the
	// collector's certificate must carry ("" is Address's host).
	CAFile     string `toml:"ca_file"`
	CertFile   string `toml:"cert_file"`
	KeyFile    string `toml:"key_file"`
	ServerName string `toml:"server_name"`
	// TLSWait is how long after the TLS handshake the sink waits for the collector to
	// refuse it (a missing or rejected client certificate) before the first message; 0
	// does not wait.
	TLSWait time.Duration `toml:"tls_wait"`
	// DialTimeout bounds a connection with its TLS handshake; WriteTimeout one write.
	DialTimeout  time.Duration `toml:"dial_timeout"`
	WriteTimeout time.Duration `toml:"write_timeout"`
	// ReconnectMin and ReconnectMax bound the back-off between failed connections.
	ReconnectMin time.Duration `toml:"reconnect_min"`
	ReconnectMax time.Duration `toml:"reconnect_max"`
	// Backlog bounds the bytes, BacklogMessages the messages, kept while the collector is
	// unreachable; the oldest are dropped (and counted) first.
	Backlog         int `toml:"backlog"`
	BacklogMessages int `toml:"backlog_messages"`
	// CloseTimeout bounds the last delivery of the backlog when the sensor stops.
	CloseTimeout time.Duration `toml:"close_timeout"`

	facility, severity int
	classifier         Classifier
}

// DefaultOptions returns the defaults of [sinks.syslog].
func DefaultOptions() *Options {
	return &Options{
		Address:   "127.0.0.1:514",
		Transport: "udp",
		Facility:  "local0",
		Severity:  "info",
		Notice: []string{"*.write", "*.command", "*.upload", "*.delete", "*.rename",
			"modbus.request function_code=5", "modbus.request function_code=6",
			"modbus.request function_code=15", "modbus.request function_code=16",
			"modbus.request function_code=22", "modbus.request function_code=23",
			"snmp.request pdu=set",
			"bacnet.request service=write-property", "bacnet.request service=write-property-multiple"},
		Warning: []string{"s7comm.stop", "s7comm.start", "*.rebooting",
			"bacnet.request service=reinitialize-device", "bacnet.request service=device-communication-control"},
		AppName:         "icsnare",
		SDID:            "icsnare@32473",
		Message:         MessageText,
		TLSWait:         500 * time.Millisecond,
		DialTimeout:     5 * time.Second,
		WriteTimeout:    5 * time.Second,
		ReconnectMin:    500 * time.Millisecond,
		ReconnectMax:    30 * time.Second,
		Backlog:         8 << 20,
		BacklogMessages: 100000,
		CloseTimeout:    5 * time.Second,
	}
}

// Validate implements protocols.Validator; errors name the key.
func (o *Options) Validate() error {
	host, port, err := net.SplitHostPort(o.Address)
	if err != nil || host == "" {
		return fmt.Errorf("address %q: want host:port", o.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: bad port", o.Address)
	}
	switch o.Transport {
	case "udp", "tcp", "tls":
	default:
		return fmt.Errorf("transport %q: want udp, tcp or tls", o.Transport)
	}
	var ok bool
	if o.facility, ok = facilities[o.Facility]; !ok {
		n, err := strconv.Atoi(o.Facility)
		if err != nil || n < 0 || n > 23 {
			return fmt.Errorf("facility %q: want a name (local0 …) or 0–23", o.Facility)
		}
		o.facility = n
	}
	if o.severity, ok = severities[o.Severity]; !ok {
		return fmt.Errorf("severity %q: want emerg, alert, crit, err, warning, notice, info or debug", o.Severity)
	}
	o.classifier = Classifier{Default: o.severity}
	for _, list := range []struct {
		key   string
		rules []string
		out   *[]Rule
	}{{"notice", o.Notice, &o.classifier.Notice}, {"warning", o.Warning, &o.classifier.Warning}} {
		for _, s := range list.rules {
			r, err := ParseRule(s)
			if err != nil {
				return fmt.Errorf("%s: %w", list.key, err)
			}
			*list.out = append(*list.out, r)
		}
	}
	if o.AppName == "" || len(o.AppName) > maxAppName {
		return fmt.Errorf("app_name %q: want 1–%d printable characters", o.AppName, maxAppName)
	}
	if len(o.Hostname) > maxHostname {
		return fmt.Errorf("hostname: longer than %d characters", maxHostname)
	}
	if err := ValidSDID(o.SDID); err != nil {
		return fmt.Errorf("sd_id: %w", err)
	}
	switch o.Message {
	case MessageText, MessageJSON, MessageNone:
	default:
		return fmt.Errorf("message %q: want text, json or none", o.Message)
	}
	if o.MaxMessage == 0 {
		o.MaxMessage = 8192
		if o.Transport == "udp" {
			o.MaxMessage = 2048
		}
	}
	if o.MaxMessage < 480 || o.MaxMessage > 65000 {
		return fmt.Errorf("max_message %d: want 480–65000 bytes", o.MaxMessage)
	}
	if o.MaxValue < 0 {
		return errors.New("max_value: negative")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("cert_file and key_file go together")
	}
	if o.Transport != "tls" && (o.CAFile != "" || o.CertFile != "" || o.ServerName != "") {
		return fmt.Errorf("ca_file, cert_file, key_file and server_name need transport = \"tls\" (it is %q)", o.Transport)
	}
	for key, f := range map[string]string{"ca_file": o.CAFile, "cert_file": o.CertFile, "key_file": o.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	for key, d := range map[string]time.Duration{"dial_timeout": o.DialTimeout, "write_timeout": o.WriteTimeout,
		"reconnect_min": o.ReconnectMin, "reconnect_max": o.ReconnectMax, "close_timeout": o.CloseTimeout} {
		if d <= 0 {
			return fmt.Errorf("%s: want a positive duration", key)
		}
	}
	if o.TLSWait < 0 || o.TLSWait >= o.DialTimeout {
		return errors.New("tls_wait: want 0 or a duration shorter than dial_timeout")
	}
	if o.ReconnectMax < o.ReconnectMin {
		return errors.New("reconnect_max is shorter than reconnect_min")
	}
	if o.Backlog < o.MaxMessage+16 {
		return fmt.Errorf("backlog %d: want at least one message (%d bytes)", o.Backlog, o.MaxMessage+16)
	}
	if o.BacklogMessages < 1 {
		return errors.New("backlog_messages: want at least 1")
	}
	return nil
}
