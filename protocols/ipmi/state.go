package ipmi

import (
	"encoding/hex"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Databus keys of the BMC state clients change. They live in the host's databus like any
// other write, so they persist as those do, and a template may set them (a BMC whose
// server is off: IPMIPowerOn False).
const (
	keyPowerOn    = "IPMIPowerOn"    // bool
	keyBootFlags  = "IPMIBootFlags"  // hex of boot options parameter 5
	keyUsers      = "IPMIUsers"      // list of [id, name, password, privilege, active, fixed]
	keySELCleared = "IPMISELCleared" // unix seconds of the last Clear SEL
)

// restore takes what the databus holds over the drawn state; values it cannot read are
// ignored (the profile's state stands).
func (hs *hostState) restore(db *profiles.Databus) {
	if v, err := db.Get(keyPowerOn); err == nil {
		if b, ok := v.(bool); ok {
			hs.powerOff = !b
		}
	}
	if s, err := db.GetString(keyBootFlags); err == nil {
		if b, err := hex.DecodeString(s); err == nil && len(b) == len(hs.bootFlags) {
			copy(hs.bootFlags[:], b)
		}
	}
	if v, err := db.Get(keySELCleared); err == nil {
		if t, err := profiles.ToInt(v); err == nil && t > 0 {
			hs.sel = clearedSEL(time.Unix(t, 0))
		}
	}
	if v, err := db.Get(keyUsers); err == nil {
		if l, ok := v.([]any); ok {
			for _, e := range l {
				if u, ok := userFromValue(e); ok && u.id >= 1 && u.id <= len(hs.users) {
					hs.users[u.id-1] = u
				}
			}
		}
	}
}

// userFromValue reads one [id, name, password, privilege, active, fixed] entry; lists are
// what the databus can keep on disk.
func userFromValue(v any) (user, bool) {
	l, ok := v.([]any)
	if !ok || len(l) != 6 {
		return user{}, false
	}
	id, err1 := profiles.ToInt(l[0])
	priv, err2 := profiles.ToInt(l[3])
	name, ok1 := l[1].(string)
	pw, ok2 := l[2].(string)
	active, ok3 := l[4].(bool)
	fixed, ok4 := l[5].(bool)
	if err1 != nil || err2 != nil || !ok1 || !ok2 || !ok3 || !ok4 || len(name) > maxNameLen || len(pw) > maxPasswordLen {
		return user{}, false
	}
	return user{id: int(id), name: name, password: []byte(pw), priv: byte(priv), active: active, fixed: fixed}, true
}

// savePower and the others write the changed state to the databus; hs.mu is held.
func (hs *hostState) savePower(db *profiles.Databus) { db.Set(keyPowerOn, !hs.powerOff) }

func (hs *hostState) saveBoot(db *profiles.Databus) {
	db.Set(keyBootFlags, hex.EncodeToString(hs.bootFlags[:]))
}

func (hs *hostState) saveUsers(db *profiles.Databus) {
	l := make([]any, 0, len(hs.users))
	for _, u := range hs.users {
		if u.name == "" && !u.active && u.priv == privNoAccess && len(u.password) == 0 {
			continue
		}
		l = append(l, []any{int64(u.id), u.name, string(u.password), int64(u.priv), u.active, u.fixed})
	}
	db.Set(keyUsers, l)
}
