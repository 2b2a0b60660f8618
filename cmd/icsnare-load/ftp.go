package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// FTP mode defaults and bounds.
const (
	ftpDefaultCommand = "PWD"           // -command "": PWD, answered 257
	ftpMaxCommand     = 200             // bytes of -command
	ftpMaxLogin       = 200             // bytes of -login
	ftpMaxLine        = 4096            // bytes of one reply line
	ftpMaxLines       = 1024            // lines of one multi-line reply
	ftpMaxPrelim      = 4               // 1xx replies before a command's final one
	ftpReplyTimeout   = 5 * time.Second // wait for one complete reply
	ftpQuitTimeout    = 250 * time.Millisecond
)

// ftpLoad opens an FTP control connection per connection, reads the 220 greeting, logs in
// with -login (USER, then PASS when asked with 331), then sends -command (default PWD) as
// each request and reads its complete reply. PWD must be answered 2xx; another command may
// be answered 1xx-3xx (after a 1xx the final reply is read as well), 4xx and 5xx are errors.
// It ends with QUIT.
type ftpLoad struct{ o opts }

func newFTP(o opts) workload { return &ftpLoad{o} }

// command is the command line each request sends, without its line end.
func (l *ftpLoad) command() string {
	if l.o.command == "" {
		return ftpDefaultCommand
	}
	return l.o.command
}

// check implements checker.
func (l *ftpLoad) check() error {
	user, _, ok := strings.Cut(l.o.login, ":")
	switch {
	case !ok || user == "":
		return fmt.Errorf("ftp: -login %q: want user:password", l.o.login)
	case len(l.o.login) > ftpMaxLogin || strings.ContainsAny(l.o.login, "\r\n\x00"):
		return fmt.Errorf("ftp: -login: at most %d bytes, without CR, LF or NUL", ftpMaxLogin)
	}
	cmd := l.command()
	if len(cmd) > ftpMaxCommand || strings.ContainsAny(cmd, "\r\n") {
		return fmt.Errorf("ftp: -command: at most %d bytes, without CR or LF", ftpMaxCommand)
	}
	verb, _, _ := strings.Cut(strings.TrimLeft(cmd, " "), " ")
	if v := strings.ToUpper(verb); v == "QUIT" || v == "REIN" {
		return fmt.Errorf("ftp: -command %s would end the login every request needs", v)
	}
	return nil
}

// ftpConn is one control connection.
type ftpConn struct {
	ctx context.Context
	c   net.Conn
	br  *bufio.Reader
}

// readReply reads one complete reply (RFC 959 4.2: a multi-line one runs from "NNN-" to a
// line that starts "NNN ") and returns its code and first line.
func (f *ftpConn) readReply() (int, string, error) {
	line, err := f.line()
	if err != nil {
		return 0, "", err
	}
	first := ftpClip(string(line))
	if len(line) < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' ||
		(len(line) > 3 && line[3] != ' ' && line[3] != '-') {
		return 0, first, fmt.Errorf("malformed reply %q", first)
	}
	code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 || line[3] == ' ' {
		return code, first, nil
	}
	end := []byte(first[:3] + " ")
	for range ftpMaxLines {
		l, err := f.line()
		if err != nil {
			return 0, first, fmt.Errorf("multi-line reply %q: %w", first, err)
		}
		if bytes.HasPrefix(l, end) || bytes.Equal(l, end[:3]) {
			return code, first, nil
		}
	}
	return 0, first, fmt.Errorf("multi-line reply %q: over %d lines", first, ftpMaxLines)
}

// line reads one reply line (at most ftpMaxLine bytes) without its line end.
func (f *ftpConn) line() ([]byte, error) {
	b, err := f.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("reply line over %d bytes", ftpMaxLine)
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return bytes.TrimRight(b, "\r\n"), nil
}

// final reads replies until one that is not preliminary (1xx), within ftpReplyTimeout.
func (f *ftpConn) final() (int, string, error) {
	f.c.SetReadDeadline(time.Now().Add(ftpReplyTimeout))
	if f.ctx.Err() != nil { // set before the deadline above: the AfterFunc's may be lost
		return 0, "", f.ctx.Err()
	}
	for range ftpMaxPrelim + 1 {
		code, first, err := f.readReply()
		if err != nil || code >= 200 {
			return code, first, err
		}
	}
	return 0, "", fmt.Errorf("over %d preliminary replies", ftpMaxPrelim)
}

// exchange sends one command line and returns its final reply.
func (f *ftpConn) exchange(line []byte) (int, string, error) {
	if _, err := f.c.Write(line); err != nil {
		return 0, "", fmt.Errorf("write: %w", err)
	}
	return f.final()
}

// login reads the greeting and logs in.
func (l *ftpLoad) login(f *ftpConn) error {
	code, first, err := f.final()
	if err != nil {
		return fmt.Errorf("ftp: greeting: %w", err)
	}
	if code != 220 {
		return fmt.Errorf("ftp: greeting %q, want 220", first)
	}
	user, pass, _ := strings.Cut(l.o.login, ":")
	code, first, err = f.exchange([]byte("USER " + user + "\r\n"))
	if err != nil {
		return fmt.Errorf("ftp: USER: %w", err)
	}
	switch code {
	case 230:
		return nil
	case 331:
	default:
		return fmt.Errorf("ftp: USER %s: %q, want 230 or 331", user, first)
	}
	code, first, err = f.exchange([]byte("PASS " + pass + "\r\n"))
	if err != nil {
		return fmt.Errorf("ftp: PASS: %w", err)
	}
	if code != 230 {
		return fmt.Errorf("ftp: login as %s: %q, want 230", user, first)
	}
	return nil
}

func (l *ftpLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		err = fmt.Errorf("ftp: %w", err)
		rec.record(start, err)
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	f := &ftpConn{ctx: ctx, c: c, br: bufio.NewReaderSize(c, ftpMaxLine)}
	// A session that cannot log in counts as one failed request.
	if err := l.login(f); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		rec.record(start, err)
		return err
	}
	cmd := l.command()
	line := []byte(cmd + "\r\n")
	maxOK := 399 // another command: its normal answer may be 1xx-3xx
	if strings.EqualFold(cmd, ftpDefaultCommand) {
		maxOK = 299
	}
	for {
		sent := time.Now()
		code, first, err := f.exchange(line)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			err = fmt.Errorf("ftp: %s: %w", ftpClip(cmd), err)
		} else if code > maxOK {
			err = fmt.Errorf("ftp: %s: reply %q", ftpClip(cmd), first)
		}
		rec.record(sent, err)
		if err != nil {
			return err
		}
		if ctx.Err() != nil || budget.Add(-1) <= 0 {
			break
		}
	}
	// Best effort: tell the server, and read its 221, within a short time.
	stop()
	c.SetDeadline(time.Now().Add(ftpQuitTimeout))
	if _, err := c.Write([]byte("QUIT\r\n")); err == nil {
		f.readReply()
	}
	return nil
}

// ftpClip shortens a server's or the user's text for an error message.
func ftpClip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
