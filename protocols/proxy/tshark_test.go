package proxy

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// TestTsharkTLS captures curl's TLS 1.2 and 1.3 sessions with a TLS proxy on lo and has
// tshark dissect them: no malformed packets, no TLS expert warnings, no TCP reset from the
// proxy (it passes the backend's end on and lets the client close), and the TLS 1.2
// handshake shows the host's generated certificate on the wire.
func TestTsharkTLS(t *testing.T) {
	tshark := protocoltest.NeedTool(t, "tshark")
	dumpcap := protocoltest.NeedTool(t, "dumpcap")
	curl := protocoltest.NeedTool(t, "curl")
	back := startBackend(t, func(c netConn, b *testBackend) {
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		b.record(buf[:n])
		c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	})
	_, srv := tlsProxy(t, back.Addr.String(), nil)
	ap := srv.addrs[1234]
	host, port := ap.Addr().String(), strconv.Itoa(int(ap.Port()))
	pcap := filepath.Join(t.TempDir(), "proxy.pcapng")
	stop := protocoltest.Capture(t, dumpcap, "tcp port "+port+" and host "+host, pcap, func() {
		if c, err := dialTimeout(ap.String()); err == nil {
			c.Close()
		}
	})
	for _, v := range []string{"--tls-max", "--tlsv1.3"} {
		args := []string{"-sS", "-k", "--max-time", "20", "https://" + ap.String() + "/"}
		if v == "--tls-max" {
			args = append([]string{"--tls-max", "1.2"}, args...)
		} else {
			args = append([]string{v}, args...)
		}
		if out, err := protocoltest.Run(t, 30*time.Second, curl, args...); err != nil || out != "ok" {
			t.Fatalf("curl %v: %v %q", args, err, out)
		}
	}
	stop()
	decodeAs := "tcp.port==" + port + ",tls"
	// The proxy ends both sessions in order: close_notify, FIN, never a reset. (curl may
	// reset its own side: it closes without reading the proxy's close_notify.)
	rst, err := protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-Y",
		"tcp.flags.reset==1 && ip.src=="+host+" && tcp.srcport=="+port, "-T", "fields", "-e", "frame.number")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(strings.ReplaceAll(rst, `Running as user "root" and group "root". This could be dangerous.`, "")) != "" {
		all, _ := protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-d", decodeAs)
		t.Errorf("resets in frames %s\n%s", rst, all)
	}
	out, err := protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-d", decodeAs, "-q", "-z", "expert,warn")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") { // TCP notes (a client's reset) are not TLS's
		if f := strings.Fields(line); len(f) > 2 && strings.Trim(f[0], "0123456789") == "" &&
			(strings.Contains(line, "TLS") || strings.Contains(line, "Malformed")) {
			t.Errorf("tshark: %s", line)
		}
	}
	out, err = protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-d", decodeAs, "-Y", "tls.handshake.type == 11",
		"-T", "fields", "-e", "tls.handshake.version", "-e", "x509sat.printableString")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, host) {
		t.Errorf("no certificate for %s on the wire:\n%s", host, out)
	}
	vers, err := protocoltest.Run(t, 60*time.Second, tshark, "-r", pcap, "-d", decodeAs, "-Y", "tls.handshake.type == 2",
		"-T", "fields", "-e", "tls.handshake.extensions.supported_version", "-e", "tls.handshake.version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(vers, "0x0304") || !strings.Contains(vers, "0x0303") {
		t.Errorf("server hellos %q: want a TLS 1.3 and a TLS 1.2 session", vers)
	}
	t.Logf("server hellos:\n%s", vers)
}

type netConn = net.Conn

func dialTimeout(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 2*time.Second) }
