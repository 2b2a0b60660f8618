package bacnet

import (
	"strconv"
	"strings"
)

// objectID is a BACnetObjectIdentifier: a 10-bit object type and a 22-bit instance.
type objectID struct {
	typ  uint16
	inst uint32
}

// wildcardInstance addresses the local device in ReadProperty(-Multiple).
const wildcardInstance = 0x3FFFFF

func (o objectID) encode() uint32 { return uint32(o.typ)<<22 | o.inst&wildcardInstance }

func decodeObjectID(v uint32) objectID {
	return objectID{typ: uint16(v >> 22), inst: v & wildcardInstance}
}

func (o objectID) String() string {
	name, ok := objectTypeNames[o.typ]
	if !ok {
		name = "object-type-" + strconv.Itoa(int(o.typ))
	}
	return name + "," + strconv.FormatUint(uint64(o.inst), 10)
}

// Object types (BACnetObjectType).
const (
	objAnalogInput       = 0
	objAnalogOutput      = 1
	objAnalogValue       = 2
	objBinaryInput       = 3
	objBinaryOutput      = 4
	objBinaryValue       = 5
	objDevice            = 8
	objMultiStateInput   = 13
	objMultiStateOutput  = 14
	objMultiStateValue   = 19
	objAccessDoor        = 30
	objCharStringValue   = 40
	objIntegerValue      = 45
	objPositiveIntValue  = 48
	numObjectTypesBitLen = 60
)

// objectTypeNames are the standard names of the object types a profile may use; Conpot
// templates name them in words ("Binary Input"), which normaliseName maps to these.
var objectTypeNames = map[uint16]string{
	0: "analog-input", 1: "analog-output", 2: "analog-value", 3: "binary-input", 4: "binary-output",
	5: "binary-value", 6: "calendar", 7: "command", 8: "device", 9: "event-enrollment", 10: "file",
	11: "group", 12: "loop", 13: "multi-state-input", 14: "multi-state-output", 15: "notification-class",
	16: "program", 17: "schedule", 18: "averaging", 19: "multi-state-value", 20: "trend-log",
	21: "life-safety-point", 22: "life-safety-zone", 23: "accumulator", 24: "pulse-converter",
	25: "event-log", 26: "global-group", 27: "trend-log-multiple", 28: "load-control",
	29: "structured-view", 30: "access-door", 31: "timer", 32: "access-credential", 33: "access-point",
	34: "access-rights", 35: "access-user", 36: "access-zone", 37: "credential-data-input",
	39: "bitstring-value", 40: "characterstring-value", 41: "date-pattern-value", 42: "date-value",
	43: "datetime-pattern-value", 44: "datetime-value", 45: "integer-value", 46: "large-analog-value",
	47: "octetstring-value", 48: "positive-integer-value", 49: "time-pattern-value", 50: "time-value",
	51: "notification-forwarder", 52: "alert-enrollment", 53: "channel", 54: "lighting-output",
	55: "binary-lighting-output", 56: "network-port",
}

// normaliseName turns "Binary Input", "binary_input", "binaryInput" or "BinaryInputObject"
// into "binary-input".
func normaliseName(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == ' ' || r == '_' || r == '-':
			b.WriteByte('-')
		case r >= 'A' && r <= 'Z':
			if i > 0 && !strings.HasSuffix(b.String(), "-") {
				b.WriteByte('-')
			}
			b.WriteRune(r + 'a' - 'A')
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSuffix(b.String(), "-object")
	for strings.Contains(out, "--") {
		out = strings.ReplaceAll(out, "--", "-")
	}
	return strings.ReplaceAll(out, "multistate", "multi-state")
}

func objectTypeByName(s string) (uint16, bool) {
	n := normaliseName(s)
	for t, name := range objectTypeNames {
		if name == n {
			return t, true
		}
	}
	return 0, false
}

// Property identifiers (BACnetPropertyIdentifier).
const (
	propAckedTransitions         = 0
	propActiveText               = 4
	propAll                      = 8
	propAPDUSegmentTimeout       = 10
	propAPDUTimeout              = 11
	propApplicationSoftware      = 12
	propCOVIncrement             = 22
	propDaylightSavingsStatus    = 24
	propDescription              = 28
	propDeviceAddressBinding     = 30
	propEventState               = 36
	propFirmwareRevision         = 44
	propInactiveText             = 46
	propLocalDate                = 56
	propLocalTime                = 57
	propLocation                 = 58
	propMaxAPDULengthAccepted    = 62
	propMaxPresValue             = 65
	propMinPresValue             = 69
	propModelName                = 70
	propNumberOfAPDURetries      = 73
	propNumberOfStates           = 74
	propObjectIdentifier         = 75
	propObjectList               = 76
	propObjectName               = 77
	propObjectType               = 79
	propOptional                 = 80
	propOutOfService             = 81
	propPolarity                 = 84
	propPresentValue             = 85
	propPriorityArray            = 87
	propProtocolObjectTypes      = 96
	propProtocolServices         = 97
	propProtocolVersion          = 98
	propReliability              = 103
	propRelinquishDefault        = 104
	propRequired                 = 105
	propResolution               = 106
	propSegmentationSupported    = 107
	propStateText                = 110
	propStatusFlags              = 111
	propSystemStatus             = 112
	propUnits                    = 117
	propUTCOffset                = 119
	propVendorIdentifier         = 120
	propVendorName               = 121
	propProtocolRevision         = 139
	propDatabaseRevision         = 155
	propMaintenanceRequired      = 158
	propMaxSegmentsAccepted      = 167
	propProfileName              = 168
	propSerialNumber             = 372
	propPropertyList             = 371
	propDoorStatus               = 231
	propLockStatus               = 233
	propDoorPulseTime            = 230
	propDoorExtendedPulseTime    = 227
	propDoorOpenTooLongTime      = 229
	propDoorAlarmState           = 226
	propSecuredStatus            = 235
	propNotificationClass        = 17
	propHighLimit                = 45
	propLowLimit                 = 59
	propDeadband                 = 25
	propEventEnable              = 35
	propNotifyType               = 72
	propTimeDelay                = 113
	propLimitEnable              = 52
	propActiveCOVSubscriptions   = 152
	propLastRestartReason        = 196
	propTimeOfDeviceRestart      = 203
	propMinimumOffTime           = 66
	propMinimumOnTime            = 67
	propChangeOfStateCount       = 15
	propElapsedActiveTime        = 33
	propFeedbackValue            = 40
	propAlarmValue               = 6
	propDeviceType               = 31
	propUpdateInterval           = 118
	propAlarmValues              = 7
	propFaultValues              = 39
	propRecordCount              = 141
	propStructuredObjectList     = 209
	propBackupFailureTimeout     = 153
	propConfigurationFiles       = 154
	propLastRestoreTime          = 157
	propAlignIntervals           = 193
	propIntervalOffset           = 195
	propTimeSynchronizationIntvl = 204
	propAutoSlaveDiscovery       = 169
	propSlaveProxyEnable         = 172
)

// propertyNames maps the properties a profile may name to their identifiers.
var propertyNames = map[string]uint32{
	"acked-transitions": propAckedTransitions, "active-text": propActiveText,
	"apdu-segment-timeout": propAPDUSegmentTimeout, "apdu-timeout": propAPDUTimeout,
	"application-software-version": propApplicationSoftware, "cov-increment": propCOVIncrement,
	"daylight-savings-status": propDaylightSavingsStatus, "description": propDescription,
	"state-text": propStateText, "event-state": propEventState, "firmware-revision": propFirmwareRevision,
	"inactive-text": propInactiveText, "location": propLocation,
	"max-apdu-length-accepted": propMaxAPDULengthAccepted, "max-pres-value": propMaxPresValue,
	"min-pres-value": propMinPresValue, "model-name": propModelName,
	"number-of-apdu-retries": propNumberOfAPDURetries, "number-of-states": propNumberOfStates,
	"object-identifier": propObjectIdentifier, "object-name": propObjectName, "object-type": propObjectType,
	"out-of-service": propOutOfService, "polarity": propPolarity, "present-value": propPresentValue,
	"protocol-version": propProtocolVersion, "reliability": propReliability,
	"relinquish-default": propRelinquishDefault, "resolution": propResolution,
	"segmentation-supported": propSegmentationSupported, "status-flags": propStatusFlags,
	"system-status": propSystemStatus, "units": propUnits, "utc-offset": propUTCOffset,
	"vendor-identifier": propVendorIdentifier, "vendor-name": propVendorName,
	"protocol-revision": propProtocolRevision, "database-revision": propDatabaseRevision,
	"maintenance-required": propMaintenanceRequired, "max-segments-accepted": propMaxSegmentsAccepted,
	"profile-name": propProfileName, "serial-number": propSerialNumber,
	"door-status": propDoorStatus, "lock-status": propLockStatus, "door-pulse-time": propDoorPulseTime,
	"door-extended-pulse-time": propDoorExtendedPulseTime, "door-open-too-long-time": propDoorOpenTooLongTime,
	"door-alarm-state": propDoorAlarmState, "secured-status": propSecuredStatus,
	"notification-class": propNotificationClass, "high-limit": propHighLimit, "low-limit": propLowLimit,
	"deadband": propDeadband, "notify-type": propNotifyType, "time-delay": propTimeDelay,
	"minimum-off-time": propMinimumOffTime, "minimum-on-time": propMinimumOnTime,
	"change-of-state-count": propChangeOfStateCount, "elapsed-active-time": propElapsedActiveTime,
	"feedback-value": propFeedbackValue, "alarm-value": propAlarmValue, "device-type": propDeviceType,
	"update-interval": propUpdateInterval, "backup-failure-timeout": propBackupFailureTimeout,
	"last-restart-reason": propLastRestartReason, "max-apdu-length": propMaxAPDULengthAccepted,
	"object-list": propObjectList, "property-list": propPropertyList, "priority-array": propPriorityArray,
	"protocol-services-supported": propProtocolServices, "protocol-object-types-supported": propProtocolObjectTypes,
}

// computed reports whether a property's value is derived, never configured.
func computed(p uint32) bool {
	switch p {
	case propObjectIdentifier, propObjectType, propObjectList, propPropertyList, propPriorityArray,
		propProtocolServices, propProtocolObjectTypes:
		return true
	}
	return false
}

// propKind is how a property's value is encoded.
type propKind uint8

const (
	kindChars propKind = iota
	kindReal
	kindUnsigned
	kindEnum
	kindBool
	kindSigned
	kindBits4      // a four-bit BACnetStatusFlags-style bit string
	kindCharsArray // an array of CharacterStrings, configured as "a;b;c" (state-text)
)

// propKinds are the datatypes of profile-settable properties; present-value depends on
// the object type (presentValueKind).
var propKinds = map[uint32]propKind{
	propActiveText: kindChars, propInactiveText: kindChars, propDescription: kindChars,
	propLocation: kindChars, propModelName: kindChars, propFirmwareRevision: kindChars,
	propApplicationSoftware: kindChars, propVendorName: kindChars, propObjectName: kindChars,
	propProfileName: kindChars, propSerialNumber: kindChars, propDeviceType: kindChars,
	propAPDUSegmentTimeout: kindUnsigned, propAPDUTimeout: kindUnsigned,
	propNumberOfAPDURetries: kindUnsigned, propNumberOfStates: kindUnsigned,
	propMaxAPDULengthAccepted: kindUnsigned, propProtocolVersion: kindUnsigned,
	propProtocolRevision: kindUnsigned, propDatabaseRevision: kindUnsigned,
	propVendorIdentifier: kindUnsigned, propMaxSegmentsAccepted: kindUnsigned,
	propNotificationClass: kindUnsigned, propTimeDelay: kindUnsigned, propUpdateInterval: kindUnsigned,
	propDoorPulseTime: kindUnsigned, propDoorExtendedPulseTime: kindUnsigned,
	propDoorOpenTooLongTime: kindUnsigned, propChangeOfStateCount: kindUnsigned,
	propElapsedActiveTime: kindUnsigned, propMinimumOffTime: kindUnsigned, propMinimumOnTime: kindUnsigned,
	propBackupFailureTimeout: kindUnsigned,
	propCOVIncrement:         kindReal, propMaxPresValue: kindReal, propMinPresValue: kindReal,
	propResolution: kindReal, propHighLimit: kindReal, propLowLimit: kindReal, propDeadband: kindReal,
	propEventState: kindEnum, propPolarity: kindEnum, propReliability: kindEnum, propUnits: kindEnum,
	propSystemStatus: kindEnum, propSegmentationSupported: kindEnum, propMaintenanceRequired: kindEnum,
	propDoorStatus: kindEnum, propLockStatus: kindEnum, propDoorAlarmState: kindEnum,
	propSecuredStatus: kindEnum, propNotifyType: kindEnum, propLastRestartReason: kindEnum,
	propFeedbackValue: kindEnum, propAlarmValue: kindEnum,
	propOutOfService: kindBool, propDaylightSavingsStatus: kindBool,
	propUTCOffset: kindSigned, propStatusFlags: kindBits4, propEventEnable: kindBits4,
	propStateText: kindCharsArray,
}

// presentValueKind is the datatype of an object type's present-value.
func presentValueKind(t uint16) propKind {
	switch t {
	case objAnalogInput, objAnalogOutput, objAnalogValue:
		return kindReal
	case objMultiStateInput, objMultiStateOutput, objMultiStateValue, objPositiveIntValue:
		return kindUnsigned
	case objIntegerValue:
		return kindSigned
	case objCharStringValue:
		return kindChars
	}
	return kindEnum
}

// Services (BACnetConfirmedServiceChoice, BACnetUnconfirmedServiceChoice).
const (
	svcSubscribeCOV               = 5
	svcConfirmedCOVNotification   = 1
	svcReadProperty               = 12
	svcReadPropertyMultiple       = 14
	svcWriteProperty              = 15
	svcDeviceCommControl          = 17
	svcReinitializeDevice         = 20
	svcIAm                        = 0
	svcIHave                      = 1
	svcTimeSynchronization        = 6
	svcWhoHas                     = 7
	svcWhoIs                      = 8
	svcUTCTimeSynchronizaton      = 9
	svcUnconfirmedCOVNotification = 2
)

var confirmedNames = [...]string{"acknowledge-alarm", "confirmed-cov-notification", "confirmed-event-notification",
	"get-alarm-summary", "get-enrollment-summary", "subscribe-cov", "atomic-read-file", "atomic-write-file",
	"add-list-element", "remove-list-element", "create-object", "delete-object", "read-property",
	"read-property-conditional", "read-property-multiple", "write-property", "write-property-multiple",
	"device-communication-control", "confirmed-private-transfer", "confirmed-text-message",
	"reinitialize-device", "vt-open", "vt-close", "vt-data", "authenticate", "request-key", "read-range",
	"life-safety-operation", "subscribe-cov-property", "get-event-information",
	"subscribe-cov-property-multiple", "confirmed-cov-notification-multiple", "confirmed-audit-notification",
	"audit-log-query"}

var unconfirmedNames = [...]string{"i-am", "i-have", "unconfirmed-cov-notification",
	"unconfirmed-event-notification", "unconfirmed-private-transfer", "unconfirmed-text-message",
	"time-synchronization", "who-has", "who-is", "utc-time-synchronization", "write-group",
	"unconfirmed-cov-notification-multiple", "unconfirmed-audit-notification", "who-am-i", "you-are"}

// serviceName names a service for events and metrics (a bounded set).
func serviceName(confirmed bool, s byte) string {
	if confirmed && int(s) < len(confirmedNames) {
		return confirmedNames[s]
	}
	if !confirmed && int(s) < len(unconfirmedNames) {
		return unconfirmedNames[s]
	}
	return "unknown-service"
}

// servicesSupportedBit is each implemented service's bit in protocol-services-supported
// (BACnetServicesSupported).
var servicesSupportedBits = []int{
	12, // readProperty
	14, // readPropertyMultiple
	5,  // subscribeCOV
	15, // writeProperty
	17, // deviceCommunicationControl
	20, // reinitializeDevice
	26, // i-Am
	27, // i-Have
	32, // timeSynchronization
	33, // who-Has
	34, // who-Is
	36, // utcTimeSynchronization
}

// servicesSupportedLen is the bit string's length for protocol revision 14.
const servicesSupportedLen = 41

// Error classes and codes.
const (
	errClassDevice    = 0
	errClassObject    = 1
	errClassProperty  = 2
	errClassServices  = 5
	errClassSecurity  = 4
	errClassResources = 3

	errCodeOther                             = 0
	errCodeInvalidDataType                   = 9
	errCodeNoSpaceToAddListElement           = 19
	errCodePasswordFailure                   = 26
	errCodeOptionalFunctionalityNotSupported = 45
	errCodeServiceRequestDenied              = 29
	errCodeUnknownObject                     = 31
	errCodeUnknownProperty                   = 32
	errCodeValueOutOfRange                   = 37
	errCodeWriteAccessDenied                 = 40
	errCodeInvalidArrayIndex                 = 42
	errCodePropertyNotArray                  = 50
)

// Reject reasons.
const (
	rejectOther                 = 0
	rejectInvalidParameterType  = 3
	rejectInvalidTag            = 4
	rejectMissingParameter      = 5
	rejectParameterOutOfRange   = 6
	rejectTooManyArguments      = 7
	rejectUnrecognizedService   = 9
	abortOther                  = 0
	abortBufferOverflow         = 1
	abortInvalidAPDUInThisState = 2
	abortSegmentationNotSupport = 4
	abortWindowSizeOutOfRange   = 7
	abortOutOfResources         = 9
	abortAPDUTooLong            = 11
)

// DeviceCommunicationControl enable-disable and ReinitializeDevice reinitialized-state.
const (
	dccEnable            = 0
	dccDisable           = 1
	dccDisableInitiation = 2

	reinitColdstart       = 0
	reinitWarmstart       = 1
	reinitActivateChanges = 7
)

// Segmentation enumeration (BACnetSegmentation).
const (
	segBoth     = 0
	segTransmit = 1
	segReceive  = 2
	segNone     = 3
)

var segmentationNames = map[string]uint32{
	"segmented-both": segBoth, "segmented-transmit": segTransmit, "segmented-receive": segReceive,
	"no-segmentation": segNone,
}
