package profiles

import "embed"

// BaseMIBs holds the MIB modules every profile can use, under "mibs/": SNMPv2-SMI,
// SNMPv2-TC, SNMPv2-CONF, SNMPv2-MIB, IANAifType-MIB, IF-MIB, IP-MIB (with the ICMP
// group), TCP-MIB, UDP-MIB and HOST-RESOURCES-MIB, written from their RFCs and trimmed
// (the modules Conpot's shipped templates name). The SNMP agent resolves profile symbols against them.
//
//go:embed mibs/*.txt
var BaseMIBs embed.FS
