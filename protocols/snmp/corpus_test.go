//go:build corpus

package snmp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzCorpus records the requests real net-snmp clients send into the fuzz seed
// corpora: ICSNARE_WRITE_CORPUS=1 go test -tags corpus -run TestWriteFuzzCorpus ./protocols/snmp
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("ICSNARE_WRITE_CORPUS") == "" {
		t.Skip("set ICSNARE_WRITE_CORPUS=1 to refresh the fuzz corpus")
	}
	srv, _ := serve(t, protocoltest.Station, "127.0.0.1:0")
	runs := [][]string{
		{"snmpget", "-v1", "-c", "public", target(srv), "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.5.0"},
		{"snmpgetnext", "-v2c", "-c", "public", target(srv), "1.3.6.1.2.1.2"},
		{"snmpbulkget", "-v2c", "-c", "public", "-Cn1", "-Cr5", target(srv), "1.3.6.1.2.1.1.1", "1.3.6.1.2.1.2"},
		{"snmpset", "-v2c", "-c", "private", target(srv), "1.3.6.1.2.1.1.6.0", "s", "Halle 2", "1.3.6.1.2.1.4.2.0", "i", "64"},
		{"snmpget", "-v3", "-l", "authPriv", "-u", "operator", "-a", "SHA", "-A", "CP443-Leitstand", "-x", "AES", "-X", "Netz-Betrieb-07", target(srv), "1.3.6.1.2.1.1.1.0"},
		{"snmpget", "-v3", "-l", "authPriv", "-u", "service", "-a", "MD5", "-A", "Wartung2011", "-x", "DES", "-X", "Wartung2011", target(srv), "1.3.6.1.2.1.1.3.0"},
	}
	for _, r := range runs {
		netsnmp(t, r[0], r[1:]...)
	}
	for _, fuzz := range []string{"FuzzDecodeMessage", "FuzzServePacket"} {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range srv.Events.Events() {
			sum := sha256.Sum256(e.Request)
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", e.Request)
			if err := os.WriteFile(filepath.Join(dir, "netsnmp-"+hex.EncodeToString(sum[:8])), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
