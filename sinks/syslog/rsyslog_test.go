package syslog

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// The tests' collector listens on addresses of 127.75.51.0/24, which no other package's
// tests use; TCP and TLS ports are the ones the kernel picks (rsyslog writes them to files).
const (
	rsyslogAddr = "127.75.51.1"
	tlsName     = "syslog.test" // the name in the collector's certificate
)

// pki is a CA with a server certificate for tlsName and a client certificate, in PEM files.
type pki struct {
	dir                                      string
	caFile, srvCert, srvKey, cliCert, cliKey string
	otherCA                                  string // a CA that signed nothing here
	otherCert, otherKey                      string // a client certificate of another CA
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir}
	caKey, ca, caDER := makeCert(t, "icsnare test CA", nil, nil, true, nil)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	srvKey, _, srvDER := makeCert(t, tlsName, ca, caKey, false, []string{tlsName})
	p.srvCert = writePEM(t, dir, "server.pem", "CERTIFICATE", srvDER)
	p.srvKey = writeKey(t, dir, "server.key", srvKey)
	cliKey, _, cliDER := makeCert(t, "icsnare sensor", ca, caKey, false, nil)
	p.cliCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	p.cliKey = writeKey(t, dir, "client.key", cliKey)
	otherCAKey, otherCA, otherDER := makeCert(t, "another CA", nil, nil, true, nil)
	p.otherCA = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherDER)
	otherKey, _, otherCliDER := makeCert(t, "a stranger", otherCA, otherCAKey, false, nil)
	p.otherCert = writePEM(t, dir, "other-client.pem", "CERTIFICATE", otherCliDER)
	p.otherKey = writeKey(t, dir, "other-client.key", otherKey)
	return p
}

var serial int64

func makeCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool, dns []string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     dns,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = nil
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeKey(t *testing.T, dir, name string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "PRIVATE KEY", der)
}

// rsyslog is an rsyslogd the test runs with its own configuration, work directory and pid
// file: a plain TCP, a TLS (client certificates required) and a UDP input, each writing what
// it receives, as rsyslog parsed it, to its own file of JSON lines.
type rsyslog struct {
	t                *testing.T
	dir              string
	cmd              *exec.Cmd
	done             chan struct{}
	tcp, tls, udp    string // host:port of each input
	tcpPort, tlsPort int
	pki              *pki
}

// received is one message as the collector's template writes it.
type received struct {
	Pri, Ver, Host, App, ProcID, MsgID, SD, Msg, Raw, Input string
}

func startRsyslog(t *testing.T, p *pki, tcpPort, tlsPort int) *rsyslog {
	t.Helper()
	bin := protocoltest.NeedTool(t, "rsyslogd")
	for _, mod := range []string{"imtcp.so", "imudp.so", "lmnsd_gtls.so"} {
		if m, _ := filepath.Glob("/usr/lib/*/rsyslog/" + mod); len(m) == 0 {
			if protocoltest.InCI() {
				t.Fatalf("rsyslog module %s is missing (CI must install rsyslog and rsyslog-gnutls)", mod)
			}
			t.Skipf("rsyslog module %s is missing (install rsyslog and rsyslog-gnutls)", mod)
		}
	}
	dir := t.TempDir()
	r := &rsyslog{t: t, dir: dir, pki: p, done: make(chan struct{})}
	conf := fmt.Sprintf(`global(workDirectory=%[1]q maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off"
  defaultNetstreamDriverCAFile=%[2]q defaultNetstreamDriverCertFile=%[3]q defaultNetstreamDriverKeyFile=%[4]q)
module(load="imtcp" maxSessions="64")
module(load="imudp")
template(name="t" type="string" string="{\"pri\":\"%%pri%%\",\"ver\":\"%%protocol-version%%\",\"host\":\"%%hostname:::json%%\",\"app\":\"%%app-name:::json%%\",\"procid\":\"%%procid:::json%%\",\"msgid\":\"%%msgid:::json%%\",\"sd\":\"%%structured-data:::json%%\",\"msg\":\"%%msg:::json%%\",\"raw\":\"%%rawmsg:::json%%\",\"input\":\"%%inputname%%\"}\n")
ruleset(name="tcp") { action(type="omfile" file=%[5]q template="t") }
ruleset(name="tls") { action(type="omfile" file=%[6]q template="t") }
ruleset(name="udp") { action(type="omfile" file=%[7]q template="t") }
input(type="imtcp" address=%[8]q port="%[9]d" listenPortFileName=%[10]q ruleset="tcp")
input(type="imtcp" address=%[8]q port="%[11]d" listenPortFileName=%[12]q ruleset="tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
input(type="imudp" address=%[8]q port="0" ruleset="udp")
`, dir, p.caFile, p.srvCert, p.srvKey,
		filepath.Join(dir, "tcp.jsonl"), filepath.Join(dir, "tls.jsonl"), filepath.Join(dir, "udp.jsonl"),
		rsyslogAddr, tcpPort, filepath.Join(dir, "tcp.port"), tlsPort, filepath.Join(dir, "tls.port"))
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var logBuf bytes.Buffer
	r.cmd.Stdout, r.cmd.Stderr = &logBuf, &logBuf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("rsyslogd's output:\n%s", logBuf.String())
		}
	})
	r.tcpPort, r.tlsPort = tcpPort, tlsPort
	if tcpPort == 0 {
		r.tcpPort = r.portFile("tcp.port") // rsyslog writes the file when the kernel picks the port
	}
	if tlsPort == 0 {
		r.tlsPort = r.portFile("tls.port")
	}
	r.tcp = net.JoinHostPort(rsyslogAddr, strconv.Itoa(r.tcpPort))
	r.tls = net.JoinHostPort(rsyslogAddr, strconv.Itoa(r.tlsPort))
	r.udp = net.JoinHostPort(rsyslogAddr, strconv.Itoa(r.udpPort()))
	r.waitListening(r.tcp)
	r.waitListening(r.tls)
	return r
}

// waitListening waits (bounded) until addr accepts TCP connections.
func (r *rsyslog) waitListening(addr string) {
	r.t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
	}
	r.t.Fatalf("rsyslogd does not listen on %s: %v", addr, err)
}

// stop ends rsyslogd (SIGTERM: it closes its connections) and waits for it.
func (r *rsyslog) stop() {
	if r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

// portFile waits (bounded) for rsyslog to write the port an input listens on.
func (r *rsyslog) portFile(name string) int {
	r.t.Helper()
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-r.done:
			r.t.Fatalf("rsyslogd exited: %v", r.cmd.ProcessState)
		default:
		}
		b, err := os.ReadFile(filepath.Join(r.dir, name))
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			p, err := strconv.Atoi(string(bytes.TrimSpace(b)))
			if err == nil && p > 0 {
				return p
			}
			last = err
		} else {
			last = err
		}
	}
	r.t.Fatalf("rsyslogd wrote no %s: %v", name, last)
	return 0
}

// udpPort finds the port the kernel gave rsyslog's UDP input: the one UDP socket bound to
// rsyslogAddr in /proc/net/udp (the address is this test's own).
func (r *rsyslog) udpPort() int {
	r.t.Helper()
	a := netip.MustParseAddr(rsyslogAddr).As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:", a[3], a[2], a[1], a[0])
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		f, err := os.Open("/proc/net/udp")
		if err != nil {
			r.t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasPrefix(fields[1], want) {
				p, err := strconv.ParseUint(strings.TrimPrefix(fields[1], want), 16, 16)
				if err == nil && p > 0 {
					f.Close()
					return int(p)
				}
			}
		}
		f.Close()
	}
	r.t.Fatal("rsyslogd's UDP input did not bind")
	return 0
}

// wait reads the input's file until it holds n messages (bounded) and returns them.
func (r *rsyslog) wait(input string, n int) []received {
	r.t.Helper()
	var got []received
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		got = r.read(input)
		if len(got) >= n {
			return got
		}
	}
	r.t.Fatalf("rsyslog's %s input received %d messages, want %d", input, len(got), n)
	return nil
}

func (r *rsyslog) read(input string) []received {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, input+".jsonl"))
	if err != nil {
		return nil
	}
	var out []received
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m received
		if err := json.Unmarshal(line, &m); err != nil {
			r.t.Fatalf("rsyslog's %s output: %v: %q", input, err, line)
		}
		out = append(out, m)
	}
	return out
}
