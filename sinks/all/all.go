// Package all registers every event sink kind of this icsnare: import it for its side
// effects. Each kind lives in its own package under sinks/ and adds one line here.
package all

import (
	_ "github.com/icsnare/icsnare/sinks/hpfeeds" // [sinks.hpfeeds]: an hpfeeds publisher
	_ "github.com/icsnare/icsnare/sinks/nats"    // [sinks.nats]: NATS JetStream, spooled, for fleets
	_ "github.com/icsnare/icsnare/sinks/stix"    // [sinks.stix]: STIX 2.1 bundles of the sessions
	_ "github.com/icsnare/icsnare/sinks/syslog"  // [sinks.syslog]: RFC 5424 over UDP, TCP, TLS
	_ "github.com/icsnare/icsnare/sinks/taxii"   // [sinks.taxii]: a TAXII 2.1 client posting them
)
