package ipmi

import (
	"encoding/binary"
	"math/rand/v2"
	"time"
)

// Sensor types, units and entities (IPMI v2.0 tables 42-3, 43-15, 43-13).
const (
	sensorTemp    = 0x01
	sensorVoltage = 0x02
	sensorFan     = 0x04

	unitDegC  = 1
	unitVolts = 4
	unitRPM   = 18

	entityProcessor   = 0x03
	entitySystemBoard = 0x07
	entityFan         = 0x1D

	sdrVersion    = 0x51
	sdrFullSensor = 0x01
)

// sensor is a threshold sensor of the BMC with its per-host nominal reading.
type sensor struct {
	num       byte
	name      string
	typ       byte
	entity    byte
	instance  byte
	unit      byte
	m         int16 // reading = m × raw × 10^rexp
	rexp      int8
	nominal   int     // raw
	spread    int     // raw reading varies within nominal ± spread/2
	thr       [6]byte // lower NR, C, NC, upper NC, C, NR (raw)
	thrMask   byte    // which thresholds are readable
	sensorMin byte
	sensorMax byte
}

// newSensors draws a board's sensors for one host.
func newSensors(r *rand.Rand) []sensor {
	cpu := 34 + r.IntN(16)
	sys := 24 + r.IntN(9)
	fan := 30 + r.IntN(22) // ×100 RPM
	ss := []sensor{
		{num: 0x01, name: "CPU1 Temp", typ: sensorTemp, entity: entityProcessor, instance: 1, unit: unitDegC, m: 1,
			nominal: cpu, spread: 4, thr: [6]byte{0, 0, 0, 85, 90, 95}, thrMask: 0x38, sensorMax: 127},
		{num: 0x02, name: "CPU2 Temp", typ: sensorTemp, entity: entityProcessor, instance: 2, unit: unitDegC, m: 1,
			nominal: cpu + r.IntN(5) - 2, spread: 4, thr: [6]byte{0, 0, 0, 85, 90, 95}, thrMask: 0x38, sensorMax: 127},
		{num: 0x0B, name: "System Temp", typ: sensorTemp, entity: entitySystemBoard, instance: 1, unit: unitDegC, m: 1,
			nominal: sys, spread: 2, thr: [6]byte{5, 5, 10, 80, 85, 90}, thrMask: 0x3F, sensorMax: 127},
		{num: 0x0C, name: "Peripheral Temp", typ: sensorTemp, entity: entitySystemBoard, instance: 2, unit: unitDegC, m: 1,
			nominal: sys + 6 + r.IntN(6), spread: 2, thr: [6]byte{5, 5, 10, 80, 85, 90}, thrMask: 0x3F, sensorMax: 127},
		{num: 0x41, name: "FAN1", typ: sensorFan, entity: entityFan, instance: 1, unit: unitRPM, m: 100,
			nominal: fan, spread: 4, thr: [6]byte{3, 5, 7, 250, 252, 254}, thrMask: 0x3F, sensorMax: 255},
		{num: 0x42, name: "FAN2", typ: sensorFan, entity: entityFan, instance: 2, unit: unitRPM, m: 100,
			nominal: fan + r.IntN(4) - 2, spread: 4, thr: [6]byte{3, 5, 7, 250, 252, 254}, thrMask: 0x3F, sensorMax: 255},
		{num: 0x43, name: "FAN3", typ: sensorFan, entity: entityFan, instance: 3, unit: unitRPM, m: 100,
			nominal: fan + r.IntN(4) - 2, spread: 4, thr: [6]byte{3, 5, 7, 250, 252, 254}, thrMask: 0x3F, sensorMax: 255},
		// 12 V in 0.06 V steps, 5 V in 0.03 V, 3.3 V and the battery in 0.02 V.
		{num: 0x31, name: "12V", typ: sensorVoltage, entity: entitySystemBoard, instance: 1, unit: unitVolts, m: 6, rexp: -2,
			nominal: 199 + r.IntN(4), spread: 2, thr: [6]byte{170, 173, 176, 223, 226, 229}, thrMask: 0x3F, sensorMax: 255},
		{num: 0x32, name: "5VCC", typ: sensorVoltage, entity: entitySystemBoard, instance: 2, unit: unitVolts, m: 3, rexp: -2,
			nominal: 166 + r.IntN(3), spread: 2, thr: [6]byte{142, 145, 148, 185, 188, 191}, thrMask: 0x3F, sensorMax: 255},
		{num: 0x33, name: "3.3VCC", typ: sensorVoltage, entity: entitySystemBoard, instance: 3, unit: unitVolts, m: 2, rexp: -2,
			nominal: 164 + r.IntN(3), spread: 2, thr: [6]byte{141, 144, 147, 181, 184, 187}, thrMask: 0x3F, sensorMax: 255},
		{num: 0x34, name: "VBAT", typ: sensorVoltage, entity: entitySystemBoard, instance: 4, unit: unitVolts, m: 2, rexp: -2,
			nominal: 150 + r.IntN(6), spread: 1, thr: [6]byte{120, 124, 128, 170, 174, 178}, thrMask: 0x3F, sensorMax: 255},
	}
	return ss
}

// reading returns the sensor's raw reading now; powered off, fans stop and the CPUs cool.
func (hs *hostState) reading(s *sensor, now time.Time, off bool) byte {
	v := s.nominal - s.spread/2 + hs.jitter(s.num, now, s.spread+1)
	if off {
		switch s.typ {
		case sensorFan:
			v = 0
		case sensorTemp:
			v = v * 2 / 3
		}
	}
	return byte(min(max(v, 0), 255))
}

// status returns the threshold comparison bits of a raw reading.
func (s *sensor) status(v byte) byte {
	var st byte
	if s.thrMask&0x01 != 0 && v <= s.thr[2] {
		st |= 0x01 // at or below lower non-critical
	}
	if s.thrMask&0x02 != 0 && v <= s.thr[1] {
		st |= 0x02
	}
	if s.thrMask&0x04 != 0 && v <= s.thr[0] {
		st |= 0x04
	}
	if s.thrMask&0x08 != 0 && v >= s.thr[3] {
		st |= 0x08
	}
	if s.thrMask&0x10 != 0 && v >= s.thr[4] {
		st |= 0x10
	}
	if s.thrMask&0x20 != 0 && v >= s.thr[5] {
		st |= 0x20
	}
	return st
}

// record builds the sensor's Full Sensor Record (IPMI v2.0 §43.1).
func (s *sensor) record(id uint16) []byte {
	b := make([]byte, 0, 64)
	b = binary.LittleEndian.AppendUint16(b, id)
	b = append(b, sdrVersion, sdrFullSensor, byte(43+len(s.name)))
	b = append(b, bmcSlaveAddr, 0x00, s.num) // owner, LUN, number
	b = append(b, s.entity, s.instance)
	b = append(b, 0x7F) // initialisation: scanning, events, thresholds, hysteresis, type
	b = append(b, 0x68) // capabilities: auto re-arm, readable hysteresis and thresholds
	b = append(b, s.typ, 0x01)
	// Assertion/deassertion event masks with lower/upper threshold reading masks, then
	// settable and readable threshold masks.
	lower := uint16(s.thrMask&0x07) << 12
	upper := uint16(s.thrMask>>3&0x07) << 12
	b = binary.LittleEndian.AppendUint16(b, lower)
	b = binary.LittleEndian.AppendUint16(b, upper)
	b = append(b, s.thrMask, s.thrMask)
	b = append(b, 0x00, s.unit, 0x00) // unsigned; base unit; no modifier
	b = append(b, 0x00)               // linear
	m := uint16(s.m) & 0x3FF
	b = append(b, byte(m), byte(m>>8)<<6) // M, tolerance 0
	b = append(b, 0x00, 0x00)             // B, accuracy
	b = append(b, 0x00)                   // accuracy, direction
	b = append(b, byte(s.rexp)<<4)        // R exponent, B exponent 0
	b = append(b, 0x01)                   // nominal reading given
	b = append(b, byte(min(max(s.nominal, 0), 255)), s.sensorMax, s.sensorMin)
	b = append(b, s.sensorMax, s.sensorMin)
	b = append(b, s.thr[5], s.thr[4], s.thr[3], s.thr[0], s.thr[1], s.thr[2])
	b = append(b, 0x02, 0x02) // hysteresis
	b = append(b, 0x00, 0x00, 0x00)
	b = append(b, 0xC0|byte(len(s.name)))
	return append(b, s.name...)
}

// sdrs returns every SDR record of the repository in order; record ids are 1-based.
func (hs *hostState) sdrs() [][]byte {
	out := make([][]byte, len(hs.sensors))
	for i := range hs.sensors {
		out[i] = hs.sensors[i].record(uint16(i + 1))
	}
	return out
}
