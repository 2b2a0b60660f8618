package ipmi

import (
	"bytes"
	"crypto/subtle"

	"github.com/icsnare/icsnare/protocols"
)

// The user table of one BMC. It starts as the profile's user_list and takes what clients
// set (a new user name, a password, a privilege), so an attacker who plants an account can
// log in with it afterwards, on that host only. hs.mu guards it.

func newUserTable(c *config) []user {
	t := make([]user, c.userSlots)
	for i := range t {
		t[i] = user{id: i + 1, priv: privNoAccess}
	}
	for _, u := range c.users {
		t[u.id-1] = *u
		t[u.id-1].password = append([]byte(nil), u.password...)
	}
	return t
}

// lookupUser returns a copy of the user called name (names are case-sensitive).
func (hs *hostState) lookupUser(name []byte) (user, bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if len(name) == 0 {
		return user{}, false
	}
	for _, u := range hs.users {
		if u.name == string(name) {
			return u, true
		}
	}
	return user{}, false
}

// userByID returns a copy of the user id's slot; ok is false for ids outside the table.
func (hs *hostState) userByID(id byte) (user, bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if id == 0 || int(id) > len(hs.users) {
		return user{}, false
	}
	return hs.users[id-1], true
}

func (c *cmdCtx) getUserAccess(d []byte) (byte, []byte) {
	if _, ok := c.channel(d[0]); !ok {
		return ccInvalidField, nil
	}
	id := d[1] & 0x3F
	hs := c.hs
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if id == 0 || int(id) > len(hs.users) {
		return ccInvalidField, nil
	}
	var enabled, fixed byte
	for _, o := range hs.users {
		if o.active {
			enabled++
		}
		if o.fixed {
			fixed++
		}
	}
	u := hs.users[id-1]
	access, status := u.priv&0x0F, byte(0)
	if u.name != "" {
		status = 0x80 // disabled
		if u.active {
			status = 0x40
		}
	}
	if u.active {
		access |= 0x30 // link authentication, IPMI messaging
	}
	return ccOK, []byte{byte(len(hs.users)), status | enabled, fixed, access}
}

func (c *cmdCtx) getUserName(d []byte) (byte, []byte) {
	u, ok := c.hs.userByID(d[0] & 0x3F)
	if !ok {
		return ccInvalidField, nil
	}
	name := make([]byte, maxNameLen)
	copy(name, u.name)
	return ccOK, name
}

// setUserName is Set User Name (IPMI v2.0 §22.28): an attacker's favourite, a new account.
func (c *cmdCtx) setUserName(d []byte) (byte, []byte) {
	c.r.must = true
	id := d[0] & 0x3F
	name := string(bytes.TrimRight(d[1:], "\x00"))
	c.r.add(protocols.F("user_id", id), protocols.F("new_name", name))
	hs := c.hs
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if id == 0 || int(id) > len(hs.users) {
		return ccInvalidField, nil
	}
	if hs.users[id-1].fixed {
		return ccInvalidField, nil // a fixed name cannot be changed
	}
	for i, o := range hs.users {
		if name != "" && o.name == name && i != int(id-1) {
			return ccInvalidField, nil
		}
	}
	hs.users[id-1].name = name
	hs.saveUsers(c.sess.Host.Databus)
	return ccOK, nil
}

// setUserPassword is Set User Password (IPMI v2.0 §22.30): disable, enable, set, test.
func (c *cmdCtx) setUserPassword(d []byte) (byte, []byte) {
	id, op := d[0]&0x3F, d[1]&0x03
	size := 16
	if d[0]&0x80 != 0 {
		size = 20
	}
	ops := [...]string{"disable user", "enable user", "set password", "test password"}
	c.r.add(protocols.F("user_id", id), protocols.F("operation", ops[op]))
	if op != 3 {
		c.r.must = true
	}
	if (op == 2 || op == 3) && len(d) != 2+size {
		if op == 3 {
			return ccPrivExceeded, nil // "wrong password size"
		}
		return ccBadLength, nil
	}
	hs := c.hs
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if id == 0 || int(id) > len(hs.users) {
		return ccInvalidField, nil
	}
	u := &hs.users[id-1]
	switch op {
	case 0:
		u.active = false
	case 1:
		u.active = true
	case 2:
		pw := bytes.TrimRight(d[2:], "\x00")
		u.password = append([]byte(nil), pw...)
		c.r.add(protocols.F("new_password", string(pw)))
	case 3:
		want := make([]byte, size)
		copy(want, u.password)
		ok := subtle.ConstantTimeCompare(want, d[2:]) == 1
		c.r.add(protocols.F("password_ok", ok))
		if !ok {
			return ccParamUnsupported, nil // 80h: password test failed
		}
		return ccOK, nil
	}
	hs.saveUsers(c.sess.Host.Databus)
	return ccOK, nil
}

// setUserAccess is Set User Access (IPMI v2.0 §22.26): the privilege limit and the
// messaging bits of one user on the LAN channel.
func (c *cmdCtx) setUserAccess(d []byte) (byte, []byte) {
	c.r.must = true
	if _, ok := c.channel(d[0]); !ok {
		return ccInvalidField, nil
	}
	id, priv := d[1]&0x3F, d[2]&0x0F
	c.r.add(protocols.F("user_id", id), protocols.F("privilege", priv))
	if priv != privNoAccess && (priv < privCallback || priv > privOEM) {
		return ccInvalidField, nil
	}
	hs := c.hs
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if id == 0 || int(id) > len(hs.users) {
		return ccInvalidField, nil
	}
	u := &hs.users[id-1]
	u.priv = priv
	if d[0]&0x80 != 0 { // the messaging bits are to be changed
		u.active = d[0]&0x10 != 0 && priv != privNoAccess
	}
	hs.saveUsers(c.sess.Host.Databus)
	return ccOK, nil
}
