package proxy

import (
	"net"
	"testing"
)

// BenchmarkRelay streams through one relay to an echo backend and back.
func BenchmarkRelay(b *testing.B) {
	back := startBackend(b, echoBackend(""))
	_, srv := oneProxy(b, back.Addr.String(), "", func(o *Options) { o.MaxBytesIn, o.MaxBytesOut = 1<<40, 1<<40 })
	c, err := net.Dial("tcp", srv.addrs[1025].String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 64<<10)
	got := make([]byte, len(chunk))
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		go c.Write(chunk)
		if _, err := ioReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}
