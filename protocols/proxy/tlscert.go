package proxy

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// maxPEMFile bounds a key or certificate file read from a template.
const maxPEMFile = 1 << 20

// loadKeyPair finds a proxy's keyfile and certfile and loads them. A relative name is
// looked up in the template's ssl/ directory (where Conpot's default and kamstrup_382
// templates keep theirs), then in ssl/ beside the template directory (where Conpot looks);
// an absolute one is read as it is. It returns the places it looked when a file is
// missing.
func loadKeyPair(sec *profiles.Section, keyFile, certFile string) (*tls.Certificate, error) {
	key, kwhere, err := readTemplateFile(sec.Profile, keyFile)
	if err != nil {
		return nil, err
	}
	cert, cwhere, err := readTemplateFile(sec.Profile, certFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%s with %s: %w", cwhere, kwhere, err)
	}
	return &pair, nil
}

// readTemplateFile reads name for a template as loadKeyPair describes.
func readTemplateFile(p *profiles.Profile, name string) ([]byte, string, error) {
	type place struct {
		fsys  fs.FS
		rel   string
		shown string
	}
	var places []place
	if filepath.IsAbs(name) {
		places = append(places, place{os.DirFS(filepath.Dir(name)), filepath.Base(name), name})
	} else {
		rel := path.Clean(filepath.ToSlash(name))
		if !fs.ValidPath(rel) {
			return nil, "", fmt.Errorf("%q: a relative name must stay inside the ssl directory", name)
		}
		places = append(places, place{p.FS, path.Join("ssl", rel), path.Join(p.Source, "ssl", rel)})
		if !strings.HasPrefix(p.Source, "embedded:") {
			parent := filepath.Dir(filepath.Clean(p.Source))
			places = append(places, place{os.DirFS(parent), path.Join("ssl", rel), filepath.Join(parent, "ssl", filepath.FromSlash(rel))})
		}
	}
	var tried []string
	for _, pl := range places {
		b, err := readBounded(pl.fsys, pl.rel)
		if errors.Is(err, fs.ErrNotExist) {
			tried = append(tried, pl.shown)
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", pl.shown, err)
		}
		return b, pl.shown, nil
	}
	return nil, "", fmt.Errorf("%q not found (looked for %s): %w", name, strings.Join(tried, ", "), fs.ErrNotExist)
}

func readBounded(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("larger than %d bytes", maxPEMFile)
	}
	return b, nil
}

// certCache keeps the certificates generated for hosts, least recently used first out.
// Generating one takes an RSA key search (tens to hundreds of milliseconds), so only one
// runs at a time in the process, and hosts asked for at once wait for the same one.
type certCache struct {
	mu     sync.Mutex
	max    int
	lru    *list.List // of *certEntry, most recent at the front
	byHost map[netip.Addr]*list.Element
	// org is the subject organisation of generated certificates ("" for none).
	org string
	// keyType is KeyRSA2048 or KeyP256.
	keyType string
}

type certEntry struct {
	addr netip.Addr
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// genSem serialises certificate generation across every proxy service of the process.
var genSem = make(chan struct{}, 1)

func newCertCache(max int, org, keyType string) *certCache {
	return &certCache{max: max, lru: list.New(), byHost: map[netip.Addr]*list.Element{}, org: org, keyType: keyType}
}

// get returns the certificate of the host at addr with the given seed, generating it on
// first use; it gives up when stop is closed first.
func (c *certCache) get(addr netip.Addr, seed uint64, stop <-chan struct{}) (*tls.Certificate, error) {
	c.mu.Lock()
	if el, ok := c.byHost[addr]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*certEntry)
		c.mu.Unlock()
		select {
		case <-e.done:
			return e.cert, e.err
		case <-stop:
			return nil, errors.New("gave up waiting for the host certificate")
		}
	}
	e := &certEntry{addr: addr, done: make(chan struct{})}
	c.byHost[addr] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.byHost, old.Value.(*certEntry).addr)
	}
	c.mu.Unlock()
	select {
	case genSem <- struct{}{}:
	case <-stop:
		c.forget(addr, e, errors.New("gave up waiting for the host certificate"))
		return nil, e.err
	}
	e.cert, e.err = hostCertificate(addr, seed, c.org, c.keyType)
	<-genSem
	if e.err != nil {
		c.forget(addr, e, e.err)
		return nil, e.err
	}
	close(e.done)
	return e.cert, nil
}

// forget drops a failed entry so the next connection tries again.
func (c *certCache) forget(addr netip.Addr, e *certEntry, err error) {
	c.mu.Lock()
	if el, ok := c.byHost[addr]; ok && el.Value.(*certEntry) == e {
		c.lru.Remove(el)
		delete(c.byHost, addr)
	}
	c.mu.Unlock()
	e.err = err
	close(e.done)
}

// hostCertificate derives the self-signed certificate of one host from its seed: the
// same host shows the same certificate (key, serial, dates and signature) on every run,
// and two hosts never share one. It looks like the certificate an embedded web server
// makes for itself on first boot: RSA 2048 (or ECDSA P-256 with keyType KeyP256) with
// SHA-256, subject CN the device's address (and the vendor as organisation), valid for 20
// years from a day in its past.
func hostCertificate(addr netip.Addr, seed uint64, org, keyType string) (*tls.Certificate, error) {
	h := sha256.New()
	h.Write([]byte("icsnare proxy host certificate v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, seed))
	h.Write(addr.AsSlice())
	var s [32]byte
	copy(s[:], h.Sum(nil))
	drbg := rand.NewChaCha8(s)
	var key crypto.Signer
	var err error
	sigAlg := x509.SHA256WithRSA
	keyUsage := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	if keyType == KeyP256 {
		key, err = deterministicP256(drbg)
		sigAlg, keyUsage = x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature
	} else {
		key, err = deterministicRSA(drbg, 2048)
	}
	if err != nil {
		return nil, err
	}
	serial := make([]byte, 16)
	drbg.Read(serial)
	serial[0] &= 0x7f
	serial[0] |= 0x01
	r := rand.New(drbg)
	epoch := time.Date(2017, time.January, 1, 0, 0, 0, 0, time.UTC)
	notBefore := epoch.Add(time.Duration(r.IntN(6*365*24*3600)) * time.Second)
	subject := pkix.Name{CommonName: addr.String()}
	if org != "" {
		subject.Organization = []string{org}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               subject,
		Issuer:                subject,
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(20, 0, 0),
		KeyUsage:              keyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{addr.AsSlice()},
		SignatureAlgorithm:    sigAlg,
	}
	// No randomness: the serial is set, RSA PKCS #1 v1.5 signatures are deterministic and
	// ECDSA signs per RFC 6979 when given none, so the certificate is the same every run.
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// deterministicRSA makes an RSA key whose primes come from the stream r (crypto/rsa's
// GenerateKey takes its randomness from the system alone). The search is the usual one:
// a random odd candidate with its top two bits set, stepped by two until it is a probable
// prime (Miller-Rabin with 20 rounds plus Baillie-PSW) coprime to e-1.
func deterministicRSA(r io.Reader, bits int) (*rsa.PrivateKey, error) {
	const e = 65537
	eBig := big.NewInt(e)
	one := big.NewInt(1)
	for range 16 {
		p, err := findPrime(r, bits/2)
		if err != nil {
			return nil, err
		}
		q, err := findPrime(r, bits-bits/2)
		if err != nil {
			return nil, err
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		pm1 := new(big.Int).Sub(p, one)
		qm1 := new(big.Int).Sub(q, one)
		phi := new(big.Int).Mul(pm1, qm1)
		d := new(big.Int).ModInverse(eBig, phi)
		if d == nil {
			continue
		}
		key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		key.Precompute()
		if err := key.Validate(); err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
		return key, nil
	}
	return nil, errors.New("host key: no key found")
}

// deterministicP256 makes an ECDSA P-256 key whose scalar comes from the stream r.
func deterministicP256(r io.Reader) (*ecdsa.PrivateKey, error) {
	b := make([]byte, 32)
	for range 16 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
			return k, nil // else the scalar was 0 or not below the group order: draw again
		}
	}
	return nil, errors.New("host key: no P-256 scalar found")
}

func findPrime(r io.Reader, bits int) (*big.Int, error) {
	b := make([]byte, (bits+7)/8)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if extra := uint(len(b)*8 - bits); extra > 0 {
		b[0] &= 0xff >> extra
	}
	top := uint(bits-1) % 8
	b[0] |= 1 << top
	if top > 0 {
		b[0] |= 1 << (top - 1)
	} else {
		b[1] |= 0x80
	}
	b[len(b)-1] |= 1
	p := new(big.Int).SetBytes(b)
	two := big.NewInt(2)
	e := big.NewInt(65537)
	m := new(big.Int)
	for i := 0; i < 1<<20; i++ {
		if p.BitLen() != bits {
			return nil, errors.New("host key: prime search ran out of range")
		}
		if m.Mod(p, e).Int64() != 1 && p.ProbablyPrime(20) {
			return p, nil
		}
		p.Add(p, two)
	}
	return nil, errors.New("host key: no prime found")
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
