package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The TLS-350 serial interface over TCP, as the sensor's guardian_ast serves it. A command
// is SOH, a type letter (I display inquiry, i computer inquiry), a three-character function
// code and a two-digit tank number (00: all tanks); scanners end it with LF. Answers come in
// one of two framings, told apart by their first byte:
//
//   - the console's (tls350): SOH, the report with CR LF line ends, ETX; the computer format
//     is always SOH, the command, data, "&&", a four-digit checksum, ETX;
//   - Conpot's: the display report with LF line ends and neither SOH nor ETX, so its end
//     is known only from its layout (see guardianLayouts).
//
// Either way a report's first lines are a blank one and the command echoed, and a command
// the gauge does not know gets the error reply 9999FF1B (SOH 9999FF1B ETX, or 9999FF1B LF).
const (
	guardianSOH           = 0x01
	guardianETX           = 0x03
	guardianDefault       = "I20100" // in-tank inventory, all tanks: what scanners send
	guardianErrorReply    = "9999FF1B"
	guardianMaxCommand    = 32
	guardianMaxAnswer     = 64 << 10
	guardianAnswerTimeout = 5 * time.Second // one answer, whatever -duration is left
)

// guardianExpect is what a command's answer must be.
type guardianExpect int

const (
	expectDisplay  guardianExpect = iota // a display report echoing the command
	expectComputer                       // a computer-format message echoing the command
	expectError                          // the error reply: the command is no inquiry
)

// guardianLayout is what a display report looks like after its header (the blank line,
// the command, the date, a blank line, the four station lines and, in the console's
// framing, one more blank line): its title line, if it has one, and its end, either the
// body's blanks-th blank line or its first run of run consecutive blank lines.
type guardianLayout struct {
	title       string
	blanks, run int
}

// guardianLayouts are the display reports of the functions the sensor renders, by code
// (the revision report, 902, has no header and is followed on its own). Their bodies:
//
//	101, 201: title, blank, (column header,) lines, blank
//	111, 206: title, blank, column header, alarms or NO ALARMS, blank
//	202: title, blank, per tank a header ending in a blank line, per delivery three lines
//	     and a blank, one more blank per tank, and the last blank line
//	203: per tank three lines and a blank, then the last blank line
//	204: title, blank, the starting values, blank, the current values, blank
//	205: column header, blank, per tank its lines and a blank, then the last blank line
var guardianLayouts = map[string]guardianLayout{
	"101": {title: "SYSTEM STATUS REPORT", blanks: 2},
	"111": {title: "PRIORITY ALARM HISTORY", blanks: 2},
	"201": {title: "IN-TANK INVENTORY", blanks: 2},
	"202": {title: "DELIVERY REPORT", run: 3},
	"203": {run: 2},
	"204": {title: "SHIFT REPORT", blanks: 3},
	"205": {run: 2},
	"206": {title: "TANK ALARM HISTORY", blanks: 2},
}

// guardianLoad sends -command (default I20100) on each connection, one command outstanding,
// and reads and checks the whole answer: framed as either framing, echoing the command,
// at most 64 KiB and within 5 s. The error reply fails a request unless the command is no
// inquiry at all (the error is then the only possible answer, and the one expected).
type guardianLoad struct {
	o      opts
	cmd    string
	expect guardianExpect
	err    error // the command's or options' fault, reported by check
}

func newGuardianAST(o opts) workload {
	l := &guardianLoad{o: o, cmd: o.command}
	if l.cmd == "" {
		l.cmd = guardianDefault
	}
	l.expect, l.err = guardianClassify(l.cmd)
	if l.err == nil && o.depth != 1 {
		l.err = errors.New("guardian-ast: -depth must be 1 (one command outstanding per connection)")
	}
	return l
}

func (l *guardianLoad) check() error { return l.err }

// guardianClassify says what the answer to cmd must be, or why cmd is refused: empty or
// blank, longer than 32 bytes, anything but printable ASCII (SOH, ETX and line ends would
// split the command), a set command (it would rewrite the sensor's tank labels, which
// persist, and gets no answer in Conpot's framing), or an inquiry with trailing characters
// (the gauge acts on the first six and drops the rest).
func guardianClassify(cmd string) (guardianExpect, error) {
	switch {
	case strings.TrimSpace(cmd) == "":
		return 0, errors.New("guardian-ast: -command is empty")
	case len(cmd) > guardianMaxCommand:
		return 0, fmt.Errorf("guardian-ast: -command is %d bytes, at most %d", len(cmd), guardianMaxCommand)
	}
	for i := 0; i < len(cmd); i++ {
		if cmd[i] < 0x20 || cmd[i] > 0x7e {
			return 0, fmt.Errorf("guardian-ast: -command %q holds a control or non-ASCII byte at %d", cmd, i)
		}
	}
	switch cmd[0] {
	case 'S', 's':
		return 0, fmt.Errorf("guardian-ast: -command %q is a set command: it would rewrite the gauge's tank labels", cmd)
	case 'I', 'i':
		if len(cmd) < 6 || !isDigit(cmd[4]) || !isDigit(cmd[5]) {
			return expectError, nil
		}
		if len(cmd) > 6 {
			return 0, fmt.Errorf("guardian-ast: -command %q: an inquiry is six characters (type, function, tank)", cmd)
		}
		if cmd[0] == 'i' {
			return expectComputer, nil
		}
		return expectDisplay, nil
	}
	return expectError, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (l *guardianLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	if l.err != nil {
		return l.err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("guardian-ast: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(c, guardianMaxAnswer)
	req := []byte("\x01" + l.cmd + "\n")
	for {
		// The answer's own deadline; set before looking at ctx, so that the AfterFunc's
		// deadline, once ctx is done, is never overwritten.
		if err := c.SetDeadline(time.Now().Add(guardianAnswerTimeout)); err != nil {
			return fmt.Errorf("guardian-ast: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		sent := time.Now()
		_, err := c.Write(req)
		if err != nil {
			err = fmt.Errorf("write: %w", err)
		} else {
			err = guardianAnswer(br, l.cmd, l.expect)
		}
		if err != nil && ctx.Err() != nil {
			return nil // cut short by the end of the run
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no complete answer within %s: %w", guardianAnswerTimeout, err)
			}
			err = fmt.Errorf("guardian-ast: %s: %w", l.cmd, err)
		}
		rec.record(sent, err)
		if err != nil {
			return err
		}
		if ctx.Err() != nil || budget.Add(-1) <= 0 {
			return nil
		}
	}
}

// errGuardianRefused is the error reply where a report was expected.
var errGuardianRefused = errors.New("the gauge answered " + guardianErrorReply + " (a function or tank it does not know)")

// guardianAnswer reads one whole answer to cmd from br and checks it is the one expected.
// Nothing may follow it: the command was the only one outstanding.
func guardianAnswer(br *bufio.Reader, cmd string, expect guardianExpect) error {
	first, err := br.ReadByte()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	switch {
	case first == guardianSOH:
		msg, err := br.ReadSlice(guardianETX)
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("no ETX within %d bytes", guardianMaxAnswer)
		}
		if err != nil {
			return fmt.Errorf("read up to ETX: %w", err)
		}
		body := msg[:len(msg)-1]
		switch {
		case string(body) == guardianErrorReply:
			if expect != expectError {
				return errGuardianRefused
			}
		case expect == expectError:
			return fmt.Errorf("expected the error reply, got %q", clip(body))
		case expect == expectComputer:
			err = guardianComputer(body, cmd)
		default:
			err = guardianFramedReport(body, cmd)
		}
		if err != nil {
			return err
		}
	case first == '\n' && expect == expectDisplay:
		if err := guardianConpotReport(br, cmd); err != nil {
			return err
		}
	default:
		// Conpot's error reply is one line; so is any answer read as unexpected here.
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read a line after %q: %w", clip(append([]byte{first}, line...)), err)
		}
		line = line[:len(line)-1]
		if first != guardianErrorReply[0] || string(line) != guardianErrorReply[1:] {
			return fmt.Errorf("unexpected answer %q", clip(append([]byte{first}, line...)))
		}
		if expect != expectError {
			return errGuardianRefused
		}
	}
	if n := br.Buffered(); n > 0 {
		peek, _ := br.Peek(n)
		return fmt.Errorf("%d bytes after the answer: %q", n, clip(peek))
	}
	return nil
}

// guardianFramedReport checks a display report in the console's framing (body: between
// SOH and ETX): CR LF lines that follow the report's layout to its last line.
func guardianFramedReport(body []byte, cmd string) error {
	r := reportEnd{code: cmd, tls: true}
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\r\n"))
		if i < 0 {
			return fmt.Errorf("line %d has no CR LF: %q", r.line+1, clip(body))
		}
		done, err := r.feed(body[:i])
		if err != nil {
			return err
		}
		body = body[i+2:]
		if done && len(body) > 0 {
			return fmt.Errorf("%d bytes after the report's last line: %q", len(body), clip(body))
		}
		if done {
			return nil
		}
	}
	if !r.known() && r.line >= 2 {
		return nil // a report of a function whose layout is not known here: echoed and framed
	}
	return fmt.Errorf("the report ends early, after %d lines", r.line)
}

// guardianConpotReport reads the rest of a display report in Conpot's framing (its first
// LF already read) up to the line its layout says is the last, 64 KiB at most.
func guardianConpotReport(br *bufio.Reader, cmd string) error {
	r := reportEnd{code: cmd}
	if !r.known() {
		return fmt.Errorf("no known layout tells where a Conpot-framed %s report ends", cmd)
	}
	if _, err := r.feed(nil); err != nil { // the first, blank line
		return err
	}
	size := 1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read line %d: %w", r.line+1, err)
		}
		if size += len(line); size > guardianMaxAnswer {
			return fmt.Errorf("the report is longer than %d bytes", guardianMaxAnswer)
		}
		done, err := r.feed(line[:len(line)-1])
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// reportEnd follows a display report line by line (line ends stripped) and says whether
// each line is its last.
type reportEnd struct {
	code   string
	tls    bool // the console's framing: one more blank line after the station's lines
	line   int  // lines seen
	blanks int  // blank lines of the body
	run    int  // blank lines in a row at the end of the body so far
}

func (r *reportEnd) known() bool {
	_, ok := guardianLayouts[r.code[1:4]]
	return ok || r.code[1:4] == "902"
}

func (r *reportEnd) feed(l []byte) (bool, error) {
	i := r.line
	r.line++
	bad := func(what string) error { return fmt.Errorf("line %d %q: %s", i+1, clip(l), what) }
	switch {
	case i == 0 && len(l) != 0:
		return false, bad("a report starts with a blank line")
	case i == 1 && string(l) != r.code:
		return false, bad("not the command echoed")
	case i < 2:
		return false, nil
	}
	if r.code[1:4] == "902" { // the revision report: no date or station
		switch {
		case i == 2 && !bytes.HasPrefix(l, []byte("SOFTWARE# ")):
			return false, bad("not SOFTWARE# …")
		case i == 3 && !bytes.HasPrefix(l, []byte("CREATED - ")):
			return false, bad("not CREATED - …")
		case i == 4 && len(l) != 0:
			return false, bad("not the blank last line")
		}
		return i == 4, nil
	}
	head := 8
	if r.tls {
		head = 9
	}
	switch {
	case i == 2 && len(l) == 0:
		return false, bad("no date")
	case (i == 3 || (i == 8 && r.tls)) && len(l) != 0:
		return false, bad("not blank")
	case i < head:
		return false, nil // the station's lines
	}
	lay, ok := guardianLayouts[r.code[1:4]]
	if !ok {
		return false, nil
	}
	if i == head && lay.title != "" && string(l) != lay.title {
		return false, bad("not the title " + lay.title)
	}
	if len(l) == 0 {
		r.blanks++
		r.run++
	} else {
		r.run = 0
	}
	if lay.blanks > 0 {
		return r.blanks == lay.blanks, nil
	}
	return r.run == lay.run, nil
}

// guardianComputer checks a computer-format message (body: SOH excluded, ETX excluded):
// the command echoed, a ten-digit YYMMDDHHmm time, data, "&&" and the checksum that makes
// the 16-bit sum of every byte from SOH through it zero.
func guardianComputer(body []byte, cmd string) error {
	if len(body) < 6+10+2+4 {
		return fmt.Errorf("computer-format answer of %d bytes: %q", len(body), clip(body))
	}
	if string(body[:6]) != cmd {
		return fmt.Errorf("computer-format answer to %q, not %s", body[:6], cmd)
	}
	for _, c := range body[6:16] {
		if !isDigit(c) {
			return fmt.Errorf("computer-format time %q", body[6:16])
		}
	}
	tag := len(body) - 6
	if body[tag] != '&' || body[tag+1] != '&' {
		return fmt.Errorf("no && before the checksum: %q", clip(body[tag:]))
	}
	want, err := strconv.ParseUint(string(body[tag+2:]), 16, 16)
	if err != nil {
		return fmt.Errorf("checksum %q: %w", body[tag+2:], err)
	}
	sum := uint16(guardianSOH)
	for _, c := range body[:tag+2] {
		sum += uint16(c & 0x7f)
	}
	if uint16(want)+sum != 0 {
		return fmt.Errorf("checksum %04X, computed %04X", want, -sum)
	}
	return nil
}

// clip cuts b to what an error message shows.
func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
