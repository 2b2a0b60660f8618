package protocols

import (
	"strconv"
	"strings"
)

// Action kinds: a write to the emulated device's data or files, or a change of its state
// (run/stop, restart, clock, communication control, users).
const (
	ActionWrite = "write"
	ActionState = "state"
)

// Action is what an event did to the emulated device, when it wrote to it or changed its
// state.
type Action struct {
	Kind  string // ActionWrite or ActionState
	Label string // "<protocol> <what>", from a small fixed set per protocol
}

// modbusWrites names the Modbus function codes that write.
var modbusWrites = map[int64]string{5: "write_single_coil", 6: "write_single_register", 15: "write_multiple_coils",
	16: "write_multiple_registers", 21: "write_file_record", 22: "mask_write_register", 23: "read_write_registers"}

// bacnetServices names the BACnet services that write or change a device's state.
var bacnetServices = map[string]string{"write-property": ActionWrite, "write-property-multiple": ActionWrite,
	"atomic-write-file": ActionWrite, "create-object": ActionWrite, "delete-object": ActionWrite,
	"add-list-element": ActionWrite, "remove-list-element": ActionWrite, "write-group": ActionWrite,
	"device-communication-control": ActionState, "reinitialize-device": ActionState,
	"time-synchronization": ActionState, "utc-time-synchronization": ActionState}

// ipmiCommands names the IPMI commands that change a BMC's or its server's state.
var ipmiCommands = map[string]string{"chassis_control": ActionState, "cold_reset": ActionState, "warm_reset": ActionState,
	"set_boot_options": ActionState, "clear_sel": ActionWrite, "set_user_password": ActionWrite,
	"set_user_name": ActionWrite, "set_user_access": ActionWrite}

// iec104Commands names the IEC 60870-5-104 control-direction ASDU types.
var iec104Commands = map[int64]string{45: "single_command", 46: "double_command", 47: "regulating_step_command",
	48: "setpoint_normalised", 49: "setpoint_scaled", 50: "setpoint_float", 51: "bitstring_command",
	58: "single_command", 59: "double_command", 60: "regulating_step_command", 61: "setpoint_normalised",
	62: "setpoint_scaled", 63: "setpoint_float", 64: "bitstring_command", 101: "counter_interrogation",
	103: "clock_synchronisation", 105: "reset_process"}

// s7Types names the S7comm event types that write or change the CPU's state.
var s7Types = map[string]Action{"s7comm.write": {ActionWrite, "s7comm write_var"},
	"s7comm.download": {ActionWrite, "s7comm download"}, "s7comm.stop": {ActionState, "s7comm plc_stop"},
	"s7comm.start": {ActionState, "s7comm plc_start"}}

// ClassifyAction reports whether an event of type typ with these fields wrote to the
// emulated device or changed its state, and what it did. Attempts count whether the device
// accepted them or not: a refused write to a PLC tells as much about its source as an
// accepted one. Volume control keeps every such event; the STIX sink makes indicators of
// their sources.
func ClassifyAction(typ string, fields []Field) (Action, bool) {
	switch typ {
	case "modbus.request":
		fc, ok := FieldInt(fields, "function_code")
		if !ok || fc < 5 || fc > 23 { // every write code is in 5..23: most requests need no lookup
			break
		}
		if name, w := modbusWrites[fc]; w {
			return Action{ActionWrite, "modbus " + name}, true
		}
	case "s7comm.write", "s7comm.download", "s7comm.stop", "s7comm.start":
		return s7Types[typ], true
	case "s7comm.request":
		switch fn, _ := stringField(fields, "function"); fn {
		case "pi_service":
			return Action{ActionState, "s7comm pi_service"}, true
		case "set_clock":
			return Action{ActionState, "s7comm set_clock"}, true
		}
	case "snmp.request":
		if pdu, _ := stringField(fields, "pdu"); pdu == "set" {
			return Action{ActionWrite, "snmp set"}, true
		}
	case "bacnet.request":
		svc, _ := stringField(fields, "service")
		if kind, ok := bacnetServices[svc]; ok {
			return Action{kind, "bacnet " + svc}, true
		}
	case "enip.write":
		return Action{ActionWrite, "enip write_tag"}, true
	case "iec104.command":
		t, _ := FieldInt(fields, "type_id")
		name, ok := iec104Commands[t]
		if !ok {
			name = "type_" + strconv.FormatInt(t, 10)
		}
		kind := ActionWrite
		if t == 101 || t == 103 || t == 105 {
			kind = ActionState
		}
		return Action{kind, "iec104 " + name}, true
	case "ipmi.request":
		k, _ := stringField(fields, "kind")
		if kind, ok := ipmiCommands[k]; ok {
			return Action{kind, "ipmi " + k}, true
		}
	case "kamstrup_management.command":
		cmd, _ := stringField(fields, "command")
		switch {
		case cmd == "RR":
			return Action{ActionState, "kamstrup_management reboot"}, true
		case len(cmd) == 2 && cmd[0] == 'S' && cmd[1] >= 'A' && cmd[1] <= 'Z':
			return Action{ActionWrite, "kamstrup_management set"}, true
		}
	case "guardian_ast.command":
		if k, _ := stringField(fields, "kind"); k == "set_product" {
			return Action{ActionWrite, "guardian_ast set_product"}, true
		}
	case "ftp.upload", "ftp.delete", "ftp.rename", "tftp.upload":
		return Action{ActionWrite, strings.Replace(typ, ".", " ", 1)}, true
	}
	return Action{}, false
}

// actionField returns the value of the field key.
func actionField(fields []Field, key string) (any, bool) {
	for _, f := range fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

func stringField(fields []Field, key string) (string, bool) {
	v, _ := actionField(fields, key)
	s, ok := v.(string)
	return s, ok
}

// FieldInt returns the integer field key of fields, whatever integer type the protocol
// used.
func FieldInt(fields []Field, key string) (int64, bool) {
	v, _ := actionField(fields, key)
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x <= 1<<62 {
			return int64(x), true
		}
	}
	return 0, false
}
