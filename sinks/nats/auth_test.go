package nats

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// writePEM writes one PEM block.
func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testPKI makes a CA and, signed by it, a server certificate for ip and a client
// certificate; it returns the PEM files' paths.
func testPKI(t *testing.T, dir string, ip net.IP) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "icsnare test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ca = filepath.Join(dir, "ca.pem")
	writePEM(t, ca, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		cert, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, cert, "CERTIFICATE", der)
		writePEM(t, keyPath, "EC PRIVATE KEY", kder)
		return cert, keyPath
	}
	srvCert, srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{ip})
	cliCert, cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth, nil)
	return
}

// TestCredentialsAndTLS runs nats-server with each kind of authentication the sink offers
// (user and password, token, NKey, mutual TLS) and checks that an event gets through, and
// that with wrong credentials nothing does and nothing is lost.
func TestCredentialsAndTLS(t *testing.T) {
	bin := protocoltest.NeedTool(t, "nats-server")
	dir := t.TempDir()
	addr := unusedAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	ca, srvCert, srvKey, cliCert, cliKey := testPKI(t, dir, net.ParseIP(host))
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(dir, "other.nk")
	os.WriteFile(otherFile, otherSeed, 0o600)

	for _, c := range []struct {
		name, server string
		scheme       string
		edit         func(*Options)
		ok           bool
	}{
		{"user and password", `authorization { user: icsnare, password: "s3cret" }`, "nats",
			func(o *Options) { o.User, o.Password = "icsnare", "s3cret" }, true},
		{"wrong password", `authorization { user: icsnare, password: "s3cret" }`, "nats",
			func(o *Options) { o.User, o.Password = "icsnare", "guess" }, false},
		{"token", `authorization { token: "t0ken" }`, "nats",
			func(o *Options) { o.Token = "t0ken" }, true},
		{"nkey", fmt.Sprintf(`authorization { users: [ { nkey: %q } ] }`, pub), "nats",
			func(o *Options) { o.NKeySeed = seedFile }, true},
		{"unknown nkey", fmt.Sprintf(`authorization { users: [ { nkey: %q } ] }`, pub), "nats",
			func(o *Options) { o.NKeySeed = otherFile }, false},
		{"mutual TLS", fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }", srvCert, srvKey, ca), "tls",
			func(o *Options) { o.TLSCA, o.TLSCert, o.TLSKey = ca, cliCert, cliKey }, true},
		{"TLS without a client certificate", fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }", srvCert, srvKey, ca), "tls",
			func(o *Options) { o.TLSCA = ca }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := filepath.Join(t.TempDir(), "server.conf")
			text := fmt.Sprintf("listen: %q\njetstream { store_dir: %q }\n%s\n", addr, t.TempDir(), c.server)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "-c", conf)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			waitDial(t, addr)
			o := DefaultOptions()
			o.Servers = []string{c.scheme + "://" + net.JoinHostPort(host, port)}
			o.CreateStream = true
			o.RetryMax, o.CloseTimeout = 200*time.Millisecond, 100*time.Millisecond
			c.edit(o)
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			s, err := Open(context.Background(), *o, events.Env{SensorID: "auth", StateDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Write(event(1)); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			if !c.ok {
				deadline = time.Now().Add(2 * time.Second)
			}
			for s.Stats().Sent == 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			st := s.Stats()
			if c.ok && st.Sent != 1 {
				t.Fatalf("not delivered: %+v", st)
			}
			if !c.ok && (st.Sent != 0 || st.Buffered+st.Spooled != 1) {
				t.Fatalf("refused credentials: %+v, want nothing sent and the event kept", st)
			}
		})
	}
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
	}
}
