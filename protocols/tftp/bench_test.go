package tftp

import "testing"

// Codec benchmarks: the request that opens a transfer and the packets of one.
func BenchmarkCodec(b *testing.B) {
	rrq := encodeRequest(opRRQ, "tftp_data.txt", "octet", option{"blksize", "1024"}, option{"tsize", "0"})
	ack := encodeACK(7)
	data := encodeData(7, make([]byte, 512))
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"parse-rrq-2-options", func() error { _, err := parseRequest(rrq); return err }},
		{"parse-ack", func() error { _, err := parsePacket(ack); return err }},
		{"parse-data-512", func() error { _, err := parsePacket(data); return err }},
		{"encode-data-512", func() error { encodeData(8, data[4:]); return nil }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
