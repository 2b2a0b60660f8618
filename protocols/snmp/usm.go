package snmp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/icsnare/icsnare/profiles"
)

// authProto is a USM authentication protocol.
type authProto struct {
	name   string
	hash   func() hash.Hash
	macLen int // truncated MAC length in msgAuthenticationParameters
}

var authProtos = []authProto{
	{"MD5", md5.New, 12},           // RFC 3414 usmHMACMD5AuthProtocol
	{"SHA", sha1.New, 12},          // RFC 3414 usmHMACSHAAuthProtocol
	{"SHA-224", sha256.New224, 16}, // RFC 7860 usmHMAC128SHA224AuthProtocol
	{"SHA-256", sha256.New, 24},    // usmHMAC192SHA256AuthProtocol
	{"SHA-384", sha512.New384, 32}, // usmHMAC256SHA384AuthProtocol
	{"SHA-512", sha512.New, 48},    // usmHMAC384SHA512AuthProtocol
}

// privacy protocols
const (
	privNone = iota
	privDES
	privAES
)

// user is a USM user from the profile.
type user struct {
	name     string
	auth     *authProto // nil: noAuthNoPriv
	priv     int
	authKu   []byte // password-derived keys (RFC 3414 A.2), localized per engine ID
	privKu   []byte
	canWrite bool
}

// localKeys are a user's keys localized to one engine ID.
type localKeys struct {
	auth, priv []byte
}

func parseUser(e *profiles.Node, name string) (*user, error) {
	spec := UserSpec{Name: name}
	spec.Access, _ = e.Attr("access")
	spec.Auth, _ = e.Attr("auth")
	spec.Priv, _ = e.Attr("priv")
	spec.AuthPass, _ = e.Attr("authpass")
	spec.PrivPass, _ = e.Attr("privpass")
	u, err := spec.user()
	if err != nil {
		return nil, e.Errorf("%v", err)
	}
	return u, nil
}

// UserSpec is an SNMPv3 USM user as a profile's <entity name="user"> or the sensor's
// [[protocols.snmp.users]] table gives it.
type UserSpec struct {
	Name     string `toml:"name"`
	Access   string `toml:"access"`   // read-only (default) or read-write
	Auth     string `toml:"auth"`     // MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512 or none
	AuthPass string `toml:"authpass"` // at least 8 characters
	Priv     string `toml:"priv"`     // DES, AES or none
	PrivPass string `toml:"privpass"` // at least 8 characters
}

func (spec UserSpec) user() (*user, error) {
	name := spec.Name
	if name == "" || len(name) > 32 {
		return nil, fmt.Errorf("user name must have 1 to 32 characters")
	}
	u := &user{name: name}
	var err error
	if u.canWrite, err = parseAccessText(spec.Access); err != nil {
		return nil, err
	}
	a := strings.ToUpper(strings.TrimSpace(spec.Auth))
	if a != "" && a != "NONE" {
		norm := strings.ReplaceAll(a, "SHA1", "SHA")
		norm = strings.Replace(norm, "SHA2", "SHA-2", 1) // SHA256 → SHA-256 below
		for i := range authProtos {
			n := authProtos[i].name
			if norm == n || norm == strings.ReplaceAll(n, "-", "") {
				u.auth = &authProtos[i]
			}
		}
		if u.auth == nil {
			return nil, fmt.Errorf("auth %q is not one of MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512", a)
		}
		if len(spec.AuthPass) < 8 {
			return nil, fmt.Errorf("user %s: authpass needs at least 8 characters (RFC 3414)", name)
		}
		u.authKu = passwordToKey(u.auth.hash, []byte(spec.AuthPass))
	}
	switch strings.ToUpper(strings.TrimSpace(spec.Priv)) {
	case "", "NONE":
	case "DES":
		u.priv = privDES
	case "AES", "AES128", "AES-128":
		u.priv = privAES
	default:
		return nil, fmt.Errorf("priv %q is not one of DES, AES", spec.Priv)
	}
	if u.priv != privNone {
		if u.auth == nil {
			return nil, fmt.Errorf("user %s: privacy needs an auth protocol", name)
		}
		if len(spec.PrivPass) < 8 {
			return nil, fmt.Errorf("user %s: privpass needs at least 8 characters (RFC 3414)", name)
		}
		u.privKu = passwordToKey(u.auth.hash, []byte(spec.PrivPass))
	}
	return u, nil
}

// passwordToKey is the password-to-key algorithm of RFC 3414 A.2 (1 MB of the repeated password).
func passwordToKey(h func() hash.Hash, pass []byte) []byte {
	d := h()
	var buf [64]byte
	idx := 0
	for n := 0; n < 1<<20; n += len(buf) {
		for i := range buf {
			buf[i] = pass[idx]
			if idx++; idx == len(pass) {
				idx = 0
			}
		}
		d.Write(buf[:])
	}
	return d.Sum(nil)
}

// localize derives the key for one engine ID: H(Ku || engineID || Ku).
func localize(h func() hash.Hash, ku, engineID []byte) []byte {
	d := h()
	d.Write(ku)
	d.Write(engineID)
	d.Write(ku)
	return d.Sum(nil)
}

func (u *user) localKeys(engineID []byte) *localKeys {
	k := &localKeys{}
	if u.auth != nil {
		k.auth = localize(u.auth.hash, u.authKu, engineID)
	}
	if u.priv != privNone {
		k.priv = localize(u.auth.hash, u.privKu, engineID)
	}
	return k
}

// mac computes the truncated HMAC of msg with the authentication parameters at off zeroed.
func (u *user) mac(key, msg []byte, off int) []byte {
	m := hmac.New(u.auth.hash, key)
	var zero [48]byte
	m.Write(msg[:off])
	m.Write(zero[:u.auth.macLen])
	m.Write(msg[off+u.auth.macLen:])
	return m.Sum(nil)[:u.auth.macLen]
}

// verify checks the message's MAC.
func (u *user) verify(key []byte, msg []byte, off int, got []byte) bool {
	if len(got) != u.auth.macLen || off < 0 || off+len(got) > len(msg) {
		return false
	}
	return subtle.ConstantTimeCompare(u.mac(key, msg, off), got) == 1
}

var errDecrypt = errors.New("decryption error")

// decrypt decrypts an encrypted scoped PDU (RFC 3414 8.1.1.3, RFC 3826 3.1.4).
func (u *user) decrypt(key []byte, boots, etime int32, salt, data []byte) ([]byte, error) {
	if len(salt) != 8 {
		return nil, errDecrypt
	}
	out := make([]byte, len(data))
	switch u.priv {
	case privDES:
		if len(data) == 0 || len(data)%des.BlockSize != 0 || len(key) < 16 {
			return nil, errDecrypt
		}
		blk, err := des.NewCipher(key[:8])
		if err != nil {
			return nil, errDecrypt
		}
		var iv [8]byte
		for i := range iv {
			iv[i] = key[8+i] ^ salt[i]
		}
		cipher.NewCBCDecrypter(blk, iv[:]).CryptBlocks(out, data)
	case privAES:
		if len(key) < 16 {
			return nil, errDecrypt
		}
		blk, err := aes.NewCipher(key[:16])
		if err != nil {
			return nil, errDecrypt
		}
		//lint:ignore SA1019 AES-CFB-128 is what RFC 3826 specifies for SNMPv3.
		cipher.NewCFBDecrypter(blk, aesIV(boots, etime, salt)).XORKeyStream(out, data)
	default:
		return nil, errDecrypt
	}
	return out, nil
}

// encrypt encrypts a scoped PDU with the given 8-byte salt.
func (u *user) encrypt(key []byte, boots, etime int32, salt, plain []byte) []byte {
	switch u.priv {
	case privDES:
		n := (len(plain) + 7) &^ 7
		buf := make([]byte, n)
		copy(buf, plain)
		blk, _ := des.NewCipher(key[:8])
		var iv [8]byte
		for i := range iv {
			iv[i] = key[8+i] ^ salt[i]
		}
		cipher.NewCBCEncrypter(blk, iv[:]).CryptBlocks(buf, buf)
		return buf
	case privAES:
		out := make([]byte, len(plain))
		blk, _ := aes.NewCipher(key[:16])
		//lint:ignore SA1019 AES-CFB-128 is what RFC 3826 specifies for SNMPv3.
		cipher.NewCFBEncrypter(blk, aesIV(boots, etime, salt)).XORKeyStream(out, plain)
		return out
	}
	return plain
}

func aesIV(boots, etime int32, salt []byte) []byte {
	iv := make([]byte, 16)
	binary.BigEndian.PutUint32(iv[0:], uint32(boots))
	binary.BigEndian.PutUint32(iv[4:], uint32(etime))
	copy(iv[8:], salt)
	return iv
}

// siemensEnterprise is Siemens AG's private enterprise number, used in engine IDs by default.
const siemensEnterprise = 4329

// usmStats sub-identifiers under 1.3.6.1.6.3.15.1.1 (RFC 3414).
const (
	usmUnsupportedSecLevels = 1
	usmNotInTimeWindows     = 2
	usmUnknownUserNames     = 3
	usmUnknownEngineIDs     = 4
	usmWrongDigests         = 5
	usmDecryptionErrors     = 6
)

var usmStatsNames = [...]string{"", "usmStatsUnsupportedSecLevels", "usmStatsNotInTimeWindows",
	"usmStatsUnknownUserNames", "usmStatsUnknownEngineIDs", "usmStatsWrongDigests", "usmStatsDecryptionErrors"}

// usmStatsOIDTLV returns the encoded OID of usmStats<n>.0.
func usmStatsOIDTLV(n int) []byte {
	oid := []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, uint32(n), 0}
	c := appendOIDContent(nil, oid)
	return appendOctets(nil, tagOID, c)
}
