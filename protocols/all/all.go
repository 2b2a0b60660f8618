// Package all links every protocol icsnare ships into a binary: import it for its side
// effect of registering them.
package all

import (
	_ "github.com/icsnare/icsnare/protocols/bacnet"       // BACnet/IP
	_ "github.com/icsnare/icsnare/protocols/enip"         // EtherNet/IP (CIP), TCP and UDP
	_ "github.com/icsnare/icsnare/protocols/ftp"          // FTP with the host's virtual filesystem
	_ "github.com/icsnare/icsnare/protocols/guardian_ast" // Guardian AST / Veeder-Root TLS-350 tank gauge
	_ "github.com/icsnare/icsnare/protocols/http"         // HTTP web HMI
	_ "github.com/icsnare/icsnare/protocols/iec104"       // IEC 60870-5-104
	_ "github.com/icsnare/icsnare/protocols/ipmi"         // IPMI v2.0 / RMCP+ BMC
	_ "github.com/icsnare/icsnare/protocols/modbus"       // Modbus/TCP
	_ "github.com/icsnare/icsnare/protocols/proxy"        // Conpot proxies: TCP/TLS relays to configured backends
	_ "github.com/icsnare/icsnare/protocols/s7comm"       // S7comm (ISO-on-TCP)
	_ "github.com/icsnare/icsnare/protocols/snmp"         // SNMP v1/v2c/v3
	_ "github.com/icsnare/icsnare/protocols/tftp"         // TFTP with the host's virtual filesystem

	_ "github.com/icsnare/icsnare/protocols/kamstrup_management" // Kamstrup 382 network module console
	_ "github.com/icsnare/icsnare/protocols/kamstrup_meter"      // Kamstrup 382 meter (KMP)
)
