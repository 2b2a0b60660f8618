package protocoltest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"time"
)

// S7ReadSZL reads SZL 0x0011 from addr as nmap's s7-info does: COTP connect, Setup
// Communication, the SZL read; each answer must arrive whole within the deadline.
func S7ReadSZL(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, h := range []string{
		"0300001611e00000000100c0010ac1020100c2020102",                       // COTP CR
		"0300001902f08032010000000000080000f0000001000101e0",                 // setup communication
		"0300002102f080320700000000000800080001120411440100ff09000400110001", // SZL 0x0011
	} {
		req, _ := hex.DecodeString(h)
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("s7 %s: %w", addr, err)
		}
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return fmt.Errorf("s7 %s: %w", addr, err)
		}
		n := int(binary.BigEndian.Uint16(hdr[2:]))
		if n < 4 {
			return fmt.Errorf("s7 %s: TPKT length %d", addr, n)
		}
		if _, err := io.ReadFull(c, make([]byte, n-4)); err != nil {
			return fmt.Errorf("s7 %s: %w", addr, err)
		}
	}
	return nil
}
