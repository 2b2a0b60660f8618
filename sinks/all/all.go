// Package all registers every event sink kind of this icsnare: import it for its side
// effects. Each kind lives in its own package under sinks/ and adds one line here.
package all
