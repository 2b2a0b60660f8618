package ipmi

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// BenchmarkSessionSetup is one RMCP+ session set-up (Open Session, RAKP 1–4) and close,
// through the service.
func BenchmarkSessionSetup(b *testing.B) {
	for _, id := range []int{3, 17} {
		b.Run(fmt.Sprintf("suite%d", id), func(b *testing.B) {
			svc, h := unitBMC(b, nil)
			f := newFlow(b, svc, h, "198.51.100.7:40000")
			b.ReportAllocs()
			for b.Loop() {
				c := login(b, f, id, "Administrator", "Password", privUser)
				f.send(c.packet(netFnApp, 0x3C, byte(c.bmcID), byte(c.bmcID>>8), byte(c.bmcID>>16), byte(c.bmcID>>24)))
			}
		})
	}
}

// BenchmarkChassisStatus is one Get Chassis Status in an established suite 17 session,
// through the service (including the client's own encryption and integrity work).
func BenchmarkChassisStatus(b *testing.B) {
	svc, h := unitBMC(b, nil)
	f := newFlow(b, svc, h, "198.51.100.7:40000")
	c := login(b, f, 17, "Administrator", "Password", privUser)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := c.cmd(netFnChassis, 0x01); !ok {
			b.Fatal("no answer")
		}
	}
}

// BenchmarkChassisStatusUDP is the same over a loopback UDP socket driven like the
// sensor's: a request, its answer, one at a time.
func BenchmarkChassisStatusUDP(b *testing.B) {
	svc, p := testService(b, nil)
	srv := serve(b, svc, hostFor(p), loopback().String()+":0")
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(srv.Addr))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// The console's datagrams go through the socket.
	f := &flowT{t: b, svc: svc}
	f.via = func(pkt []byte) []byte {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(pkt); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		return buf[:n]
	}
	c := &console{f: f, user: []byte("Administrator"), pass: []byte("Password")}
	c.su, _ = lookupSuite(17)
	if !c.handshake() {
		b.Fatal("handshake failed")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := c.cmd(netFnChassis, 0x01); !ok {
			b.Fatal("no answer")
		}
	}
}
