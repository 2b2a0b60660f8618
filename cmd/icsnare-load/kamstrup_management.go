package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// The Kamstrup network module's console (TCP 50100) greets with "\r\nWelcome...\r\nConnected
// to [MAC]\r\n" and answers each line after 0.25 s. It has no prompt: an answer ends where
// its command's text ends. kamConsoleAnswers describes the answers of the commands that
// only read (without parameters): the text each begins with and the start of the line (CR
// LF terminated) that ends it.
var kamConsoleAnswers = map[string]kamConsoleAnswer{
	"H":   {strings.Repeat("=", 78) + "\r\nService Menu\r\n", "Kamstrup (R)"},
	"!AC": {"\r\n", " [5] "},
	"!GC": {"Device Name         : ", "Software watchdog: "},
	"!GV": {"\r\nSoftware Version: ", "Software Version: "},
	"!RC": {"\r\nStatus: ", "Status: "},
	"!SA": {"\r\n\r\nService server addr.: ", "Service server addr.: "},
	"!SH": {"\r\nService server hostname.: ", "Service server hostname.: "},
	"!SI": {"\r\nUse DHCP            : ", "IP addr.            : "},
	"!SK": {"\r\nSoftware watchdog: ", "Keep alive timer (flash setting): "},
	"!SP": {"\r\n\r\nKAP on server: ", "Cfg on module: "},
	"!SS": {"\r\nUART A setup : ", "UART B setup : "},
	"!WM": {"\r\n\r\nOK\r\n", "OK"},
}

// kamConsoleBanner is the greeting's shape.
var kamConsoleBanner = kamConsoleAnswer{"\r\nWelcome...\r\nConnected to [", "Connected to ["}

// Bounds of the console mode.
const (
	kamConsoleDefault   = "!GV" // the software version: the shortest answer
	kamConsoleMaxCmd    = 200
	kamConsoleMaxLine   = 1024 // longest answer line (the menu's are 80 bytes)
	kamConsoleMaxAnswer = 8192 // longest answer (the menu is about 1.4 KiB)
	kamConsoleMaxDepth  = 32   // lines of one read the console answers (it drops the rest)
)

// kamConsoleAnswer is the shape of one answer.
type kamConsoleAnswer struct {
	first string // the answer starts with this
	last  string // its last line starts with this
}

// kamConsoleWord returns a command line's command word, upper case, as the module reads
// it, and whether parameters follow.
func kamConsoleWord(line string) (word string, params bool) {
	word, _, params = strings.Cut(strings.TrimSpace(line), " ")
	return strings.ToUpper(word), params
}

// kamConsoleRead reads one answer of shape a from br: it must start with a.first, carry no
// error text ("? Command not found.", "? Invalid parameter.", "Invalid data!"), end with
// CR LF lines, and end at a line starting with a.last, within the bounds above.
func kamConsoleRead(br *bufio.Reader, a kamConsoleAnswer) error {
	var head []byte // the answer's first len(a.first) bytes
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("answer line longer than %d bytes: %q…", kamConsoleMaxLine, line[:64])
		}
		if err != nil {
			if len(line) > 0 || total > 0 {
				return fmt.Errorf("answer cut short after %d bytes (%q): %w", total+len(line), line, err)
			}
			return fmt.Errorf("no answer: %w", err)
		}
		total += len(line)
		if total > kamConsoleMaxAnswer {
			return fmt.Errorf("answer longer than %d bytes without its end line %q", kamConsoleMaxAnswer, a.last)
		}
		if len(head) < len(a.first) {
			head = append(head, line[:min(len(line), len(a.first)-len(head))]...)
			if string(head) != a.first[:len(head)] {
				return fmt.Errorf("answer starts %q, want %q", head, a.first)
			}
		}
		text, ok := strings.CutSuffix(string(line), "\r\n")
		if !ok {
			return fmt.Errorf("answer line %q does not end with CR LF", line)
		}
		if strings.HasPrefix(text, "? ") || text == "Invalid data!" {
			return fmt.Errorf("console answered %q", text)
		}
		if len(head) == len(a.first) && strings.HasPrefix(text, a.last) {
			return nil
		}
	}
}

// kamstrupManagementLoad reads the console's banner on each connection, then sends
// -command lines (default !GV), -depth at a time, and reads each answer to its end.
type kamstrupManagementLoad struct{ o opts }

func newKamstrupManagement(o opts) workload { return &kamstrupManagementLoad{o} }

func (l *kamstrupManagementLoad) command() string {
	if l.o.command == "" {
		return kamConsoleDefault
	}
	return l.o.command
}

func (l *kamstrupManagementLoad) check() error {
	cmd := l.command()
	if strings.ContainsAny(cmd, "\r\n") {
		return fmt.Errorf("kamstrup-management: -command %q: one line, without CR or LF", cmd)
	}
	if len(cmd) > kamConsoleMaxCmd {
		return fmt.Errorf("kamstrup-management: -command of %d bytes, at most %d", len(cmd), kamConsoleMaxCmd)
	}
	word, params := kamConsoleWord(cmd)
	if _, ok := kamConsoleAnswers[word]; !ok || params {
		words := make([]string, 0, len(kamConsoleAnswers))
		for w := range kamConsoleAnswers {
			words = append(words, w)
		}
		slices.Sort(words)
		return fmt.Errorf("kamstrup-management: -command %q: the console has no prompt, so the mode sends only the commands "+
			"whose answers it knows the end of, without parameters (they change nothing): %s", cmd, strings.Join(words, " "))
	}
	if l.o.depth > kamConsoleMaxDepth {
		return fmt.Errorf("kamstrup-management: -depth %d: the console answers at most %d lines sent together", l.o.depth, kamConsoleMaxDepth)
	}
	return nil
}

func (l *kamstrupManagementLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	cmd := l.command()
	word, _ := kamConsoleWord(cmd)
	shape := kamConsoleAnswers[word]
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("kamstrup-management: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(c, kamConsoleMaxLine)
	if !kamstrupDeadline(ctx, c) {
		return nil
	}
	if err := kamConsoleRead(br, kamConsoleBanner); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("kamstrup-management: banner: %w", kamstrupReadError(err))
	}
	line := []byte(cmd + "\r\n")
	read := func() error {
		if err := kamConsoleRead(br, shape); err != nil {
			return kamstrupReadError(err)
		}
		return nil
	}
	fail := func(err error) error { return fmt.Errorf("kamstrup-management: %s: %w", cmd, err) }
	return kamstrupPipeline(ctx, c, l.o.depth, line, rec, budget, read, fail)
}
