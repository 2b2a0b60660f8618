package main

import "github.com/icsnare/icsnare/sensor"

// applyMIBPath hands extra MIB directories to the SNMP protocol before profiles load.
func applyMIBPath(cfg sensor.Config) error {
	return nil
}
