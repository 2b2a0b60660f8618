package profiles

import "embed"

// BaseMIBs holds the MIB modules every profile can use, under "mibs/": SNMPv2-SMI,
// SNMPv2-TC, SNMPv2-CONF, SNMPv2-MIB, IANAifType-MIB, IF-MIB and IP-MIB, written from
// their RFCs and trimmed. The SNMP agent resolves profile symbols against them.
//
//go:embed mibs/*.txt
var BaseMIBs embed.FS
