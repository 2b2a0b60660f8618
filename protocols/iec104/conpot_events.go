package iec104

import "github.com/icsnare/icsnare/protocols"

// ConpotEvents implements protocols.ConpotEventer: Conpot's IEC 104 logs only the
// NEW_CONNECTION and CONNECTION_LOST documents the sensor writes, never a frame.
func (protocol) ConpotEvents(*protocols.Event) []protocols.ConpotEvent { return nil }
