package netcfg

import (
	"errors"
	"fmt"
	"net"
)

// ParseMAC parses an Ethernet address (aa:bb:cc:dd:ee:ff, aa-bb-…, aabb.ccdd.eeff) and
// validates it with ValidateMAC.
func ParseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("netcfg: %w", err)
	}
	if err := ValidateMAC(hw); err != nil {
		return nil, err
	}
	return hw, nil
}

// ValidateMAC accepts a 6-byte unicast, non-zero Ethernet address. Locally administered
// addresses (second bit of the first byte) are accepted, as are vendor OUIs.
func ValidateMAC(hw net.HardwareAddr) error {
	switch {
	case len(hw) != 6:
		return fmt.Errorf("netcfg: MAC %q: %d bytes, want 6 (Ethernet)", hw.String(), len(hw))
	case hw[0]&1 != 0:
		return fmt.Errorf("netcfg: MAC %s: multicast or broadcast address (the first byte must be even)", hw)
	case isZero(hw):
		return errors.New("netcfg: MAC 00:00:00:00:00:00: the zero address is not a valid interface address")
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
