package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadRun runs icsnare-load with args and returns the exit code, the requests and errors
// of its result line (-1 when there is none) and what it wrote (stdout, then stderr).
func loadRun(t *testing.T, args ...string) (code, ok, failed int, out string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	out = o.String() + e.String()
	t.Logf("%v: exit %d\n%s", args, code, out)
	ok, failed = -1, -1
	if m := linePat.FindStringSubmatch(o.String()); m != nil {
		ok, _ = strconv.Atoi(m[1])
		failed, _ = strconv.Atoi(m[2])
	}
	return code, ok, failed, out
}

// runCounts is loadRun of a mode against target with the tests' bounds: 3 connections,
// 300 ms, at most 300 requests; args come after them and may override them.
func runCounts(t *testing.T, mode, target string, args ...string) (code, ok, failed int, out string) {
	t.Helper()
	return loadRun(t, append([]string{"-mode", mode, "-target", target, "-conns", "3",
		"-warmup", "0s", "-duration", "300ms", "-max-requests", "300"}, args...)...)
}

// fakeServer listens on a fresh test address and runs serve on each connection, with a
// 10 s deadline; the connection closes when serve returns or the test ends.
func fakeServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(testAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		closed bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed { // accepted as the test ended
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// fakeFTP serves a scripted FTP server: greeting, then answer(line) to each command line
// (221 to QUIT).
func fakeFTP(t *testing.T, greeting string, answer func(line string) string) string {
	t.Helper()
	return fakeServer(t, func(c net.Conn) {
		if _, err := c.Write([]byte(greeting)); err != nil {
			return
		}
		br := bufio.NewReader(c)
		for range 100_000 {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "QUIT" {
				c.Write([]byte("221 Bye.\r\n"))
				return
			}
			if _, err := c.Write([]byte(answer(line))); err != nil {
				return
			}
		}
	})
}

// fakeGauge answers each connection's request lines with answers in order, then closes it.
func fakeGauge(t *testing.T, answers ...string) string {
	t.Helper()
	return fakeServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for _, a := range answers {
			if _, err := br.ReadSlice('\n'); err != nil {
				return
			}
			if _, err := io.WriteString(c, a); err != nil {
				return
			}
		}
	})
}
