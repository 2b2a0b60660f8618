package ipmi

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
)

// Algorithm numbers (IPMI v2.0 §13.28).
const (
	authRAKPNone       = 0x00
	authRAKPHMACSHA1   = 0x01
	authRAKPHMACMD5    = 0x02
	authRAKPHMACSHA256 = 0x03

	integNone          = 0x00
	integHMACSHA1_96   = 0x01
	integHMACMD5128    = 0x02
	integHMACSHA256128 = 0x04

	confNone      = 0x00
	confAESCBC128 = 0x01
)

// suite is a standard cipher suite (IPMI v2.0 table 22-20).
type suite struct {
	id                byte
	auth, integ, conf byte
}

// standardSuites are the suites this BMC can offer; a profile enables a subset.
var standardSuites = []suite{
	{0, authRAKPNone, integNone, confNone},
	{1, authRAKPHMACSHA1, integNone, confNone},
	{2, authRAKPHMACSHA1, integHMACSHA1_96, confNone},
	{3, authRAKPHMACSHA1, integHMACSHA1_96, confAESCBC128},
	{6, authRAKPHMACMD5, integNone, confNone},
	{7, authRAKPHMACMD5, integHMACMD5128, confNone},
	{8, authRAKPHMACMD5, integHMACMD5128, confAESCBC128},
	{15, authRAKPHMACSHA256, integNone, confNone},
	{16, authRAKPHMACSHA256, integHMACSHA256128, confNone},
	{17, authRAKPHMACSHA256, integHMACSHA256128, confAESCBC128},
}

func lookupSuite(id int) (suite, bool) {
	for _, s := range standardSuites {
		if int(s.id) == id {
			return s, true
		}
	}
	return suite{}, false
}

// authHash returns the hash of a RAKP authentication algorithm (nil for RAKP-none).
func authHash(alg byte) func() hash.Hash {
	switch alg {
	case authRAKPHMACSHA1:
		return sha1.New
	case authRAKPHMACMD5:
		return md5.New
	case authRAKPHMACSHA256:
		return sha256.New
	}
	return nil
}

// rakp4Len is the length of RAKP 4's integrity check value for an authentication algorithm.
func rakp4Len(alg byte) int {
	switch alg {
	case authRAKPHMACSHA1:
		return 12
	case authRAKPHMACMD5, authRAKPHMACSHA256:
		return 16
	}
	return 0
}

func hmacSum(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// keys are an RMCP+ session's derived keys.
type keys struct {
	sik, k1, k2 []byte
	integ       func() hash.Hash
	integLen    int
	block       cipher.Block // AES-CBC-128 with the first 16 bytes of K2; nil without confidentiality
}

// deriveKeys computes SIK, K1 and K2 (IPMI v2.0 §13.31, §13.32). kg is the BMC key, or the
// user's key when the BMC has none.
func deriveKeys(s suite, kg, rc, rm []byte, role byte, name []byte) (*keys, error) {
	h := authHash(s.auth)
	k := &keys{}
	if h == nil {
		return k, nil
	}
	k.sik = hmacSum(h, kg, rc, rm, []byte{role, byte(len(name))}, name)
	// The constants are 20 bytes whatever the hash (IPMI v2.0 §13.32; ipmitool and BMC
	// firmware agree on this for HMAC-SHA256 too).
	k.k1 = hmacSum(h, k.sik, repeat(0x01, 20))
	k.k2 = hmacSum(h, k.sik, repeat(0x02, 20))
	switch s.integ {
	case integHMACSHA1_96:
		k.integ, k.integLen = sha1.New, 12
	case integHMACMD5128:
		k.integ, k.integLen = md5.New, 16
	case integHMACSHA256128:
		k.integ, k.integLen = sha256.New, 16
	}
	if s.conf == confAESCBC128 {
		var err error
		if k.block, err = aes.NewCipher(k.k2[:16]); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// sign appends the integrity code of signed to dst.
func (k *keys) sign(dst, signed []byte) []byte {
	if k.integ == nil {
		return dst
	}
	return append(dst, hmacSum(k.integ, k.k1, signed)[:k.integLen]...)
}

// verify checks a packet's integrity code.
func (k *keys) verify(signed, code []byte) bool {
	if k.integ == nil {
		return len(code) == 0
	}
	return len(code) == k.integLen && hmac.Equal(hmacSum(k.integ, k.k1, signed)[:k.integLen], code)
}

// decrypt opens an AES-CBC-128 payload: IV, then the ciphertext of data, pad 1,2,3… and
// the pad length. It returns nil when the payload is malformed.
func (k *keys) decrypt(p []byte) []byte {
	const bs = aes.BlockSize
	if k.block == nil || len(p) < 2*bs || len(p)%bs != 0 {
		return nil
	}
	out := make([]byte, len(p)-bs)
	cipher.NewCBCDecrypter(k.block, p[:bs]).CryptBlocks(out, p[bs:])
	pad := int(out[len(out)-1])
	if pad >= bs || pad+1 > len(out) {
		return nil
	}
	for i := range pad {
		if out[len(out)-1-pad+i] != byte(i+1) {
			return nil
		}
	}
	return out[:len(out)-1-pad]
}

// encrypt seals data with AES-CBC-128 under a fresh IV from rnd.
func (k *keys) encrypt(data []byte, rnd func([]byte)) []byte {
	const bs = aes.BlockSize
	pad := (bs - (len(data)+1)%bs) % bs
	out := make([]byte, bs, bs+len(data)+pad+1)
	rnd(out[:bs])
	out = append(out, data...)
	for i := range pad {
		out = append(out, byte(i+1))
	}
	out = append(out, byte(pad))
	cipher.NewCBCEncrypter(k.block, out[:bs]).CryptBlocks(out[bs:], out[bs:])
	return out
}
