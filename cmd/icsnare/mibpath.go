package main

import (
	"github.com/icsnare/icsnare/protocols/snmp"
	"github.com/icsnare/icsnare/sensor"
)

// applyMIBPath hands extra MIB directories to the SNMP protocol before profiles load.
func applyMIBPath(cfg sensor.Config) error {
	for _, dir := range cfg.SNMP.MIBPath {
		if err := snmp.AddMIBPath(dir); err != nil {
			return err
		}
	}
	return nil
}
