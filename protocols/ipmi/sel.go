package ipmi

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/icsnare/icsnare/protocols"
)

// selEntry is one System Event Log record (IPMI v2.0 §32.1).
type selEntry struct {
	at         time.Time
	sensorType byte
	sensorNum  byte
	dirType    byte // event direction (bit 7: deassertion) and event/reading type
	data       [3]byte
}

// newSEL draws a host's event log: cleared some weeks before the boot, a few events
// since, and the power-on at the boot.
func newSEL(r *rand.Rand, boot time.Time) []selEntry {
	cleared := boot.Add(-time.Duration(20+r.IntN(120)) * 24 * time.Hour).Add(time.Duration(r.IntN(86400)) * time.Second)
	at := func(frac float64) time.Time {
		return cleared.Add(time.Duration(float64(boot.Sub(cleared)) * frac)).Truncate(time.Second)
	}
	sel := []selEntry{
		// Event Logging Disabled: log area reset/cleared.
		{at: cleared.Truncate(time.Second), sensorType: 0x10, sensorNum: 0x00, dirType: 0x6F, data: [3]byte{0x02, 0xFF, 0xFF}},
	}
	if r.IntN(2) == 0 {
		// Physical Security: general chassis intrusion, asserted.
		sel = append(sel, selEntry{at: at(0.2 + 0.1*r.Float64()), sensorType: 0x05, sensorNum: 0xAA, dirType: 0x6F, data: [3]byte{0x00, 0xFF, 0xFF}})
	}
	// Power Supply: input lost, then back.
	t := at(0.5 + 0.3*r.Float64())
	sel = append(sel,
		selEntry{at: t, sensorType: 0x08, sensorNum: 0xC8, dirType: 0x6F, data: [3]byte{0x03, 0xFF, 0xFF}},
		selEntry{at: t.Add(time.Duration(30+r.IntN(600)) * time.Second), sensorType: 0x08, sensorNum: 0xC8, dirType: 0xEF, data: [3]byte{0x03, 0xFF, 0xFF}},
	)
	if r.IntN(3) == 0 {
		// Temperature: upper non-critical going high on the CPU, asserted then deasserted.
		t := at(0.85 + 0.1*r.Float64())
		sel = append(sel,
			selEntry{at: t, sensorType: sensorTemp, sensorNum: 0x01, dirType: 0x01, data: [3]byte{0x57, 86, 85}},
			selEntry{at: t.Add(time.Duration(60+r.IntN(900)) * time.Second), sensorType: sensorTemp, sensorNum: 0x01, dirType: 0x81, data: [3]byte{0x57, 84, 85}},
		)
	}
	// System ACPI Power State: S0/G0 working, at the boot.
	sel = append(sel, selEntry{at: boot.Truncate(time.Second), sensorType: 0x22, sensorNum: 0x99, dirType: 0x6F, data: [3]byte{0x00, 0xFF, 0xFF}})
	return sel
}

// clearedSEL is the log right after Clear SEL: the one entry saying so.
func clearedSEL(at time.Time) []selEntry {
	return []selEntry{{at: at.Truncate(time.Second), sensorType: 0x10, sensorNum: 0x00, dirType: 0x6F, data: [3]byte{0x02, 0xFF, 0xFF}}}
}

// clearSEL is Clear SEL (IPMI v2.0 §31.9): "CLR" and AAh erase the log, 00h asks how far
// the erasure got (done at once here). Wiping the log is an intruder's move: always an event.
func (c *cmdCtx) clearSEL(d []byte) (byte, []byte) {
	c.r.must = true
	if string(d[2:5]) != "CLR" {
		return ccInvalidField, nil
	}
	switch d[5] {
	case 0x00:
		return ccOK, []byte{0x01}
	case 0xAA:
	default:
		return ccInvalidField, nil
	}
	if binary.LittleEndian.Uint16(d) == 0 {
		return ccReservation, nil
	}
	c.hs.mu.Lock()
	defer c.hs.mu.Unlock()
	c.r.add(protocols.F("entries_erased", len(c.hs.sel)))
	c.hs.sel = clearedSEL(c.now)
	c.sess.Host.Databus.Set(keySELCleared, c.now.Unix())
	return ccOK, []byte{0x01}
}

// record encodes the entry as record id (1-based index).
func (e *selEntry) record(id uint16) []byte {
	b := make([]byte, 0, 16)
	b = binary.LittleEndian.AppendUint16(b, id)
	b = append(b, 0x02) // system event record
	b = binary.LittleEndian.AppendUint32(b, uint32(e.at.Unix()))
	b = append(b, bmcSlaveAddr, 0x00, 0x04) // generator: BMC, LUN 0; event message format 2.0
	b = append(b, e.sensorType, e.sensorNum, e.dirType)
	return append(b, e.data[:]...)
}
