package clone

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
)

func init() { register(ftpProber{}) }

// ftpProber reads what an FTP server tells before any login: the greeting, SYST and FEAT.
// It never logs in, not even anonymously.
type ftpProber struct{}

func (ftpProber) Name() string     { return "ftp" }
func (ftpProber) DefaultPort() int { return 21 }

// ftpCommands are the only commands the prober sends.
var ftpCommands = map[string]bool{"SYST": true, "FEAT": true, "QUIT": true}

func (ftpProber) Probe(ctx context.Context, p *Probe) error {
	if err := p.Request(ctx); err != nil {
		return err
	}
	d := net.Dialer{Timeout: p.Opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", p.Addr())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAbsent, err)
	}
	defer conn.Close()
	tp := textproto.NewReader(bufio.NewReaderSize(conn, 4096))
	read := func() (int, string, error) {
		conn.SetDeadline(p.Deadline())
		code, msg, err := tp.ReadResponse(0)
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		return code, msg, err
	}
	send := func(cmd string) (int, string, error) {
		if !ftpCommands[cmd] {
			return 0, "", fmt.Errorf("ftp: refusing to send %s", cmd)
		}
		if err := p.Request(ctx); err != nil {
			return 0, "", err
		}
		conn.SetDeadline(p.Deadline())
		if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
			return 0, "", err
		}
		return read()
	}
	code, banner, err := read()
	if err != nil || code/100 != 2 {
		return fmt.Errorf("%w: greeting %d %q: %v", ErrAbsent, code, banner, err)
	}
	rep, tpl := p.Report, p.Template
	banner = strings.ReplaceAll(banner, "\n", " ")
	rep.Find("greeting %d %s", code, banner)
	if strings.Contains(banner, p.Target.String()) {
		rep.Notes = append(rep.Notes, "the greeting names the device's address; every copy shows it (edit <banner>)")
	}
	var b strings.Builder
	b.WriteString("    <device_info>\n")
	fmt.Fprintf(&b, "        <banner>%s</banner>\n", X(banner))
	if code, syst, err := send("SYST"); err == nil && code == 215 {
		fmt.Fprintf(&b, "        <syst>%s</syst>\n", X(syst))
		rep.Find("SYST %s", syst)
	} else if err == nil {
		rep.Refuse("SYST: %d %s", code, syst)
	} else if errors.Is(err, ErrBudget) || ctx.Err() != nil {
		return err
	}
	if code, feat, err := send("FEAT"); err == nil && code == 211 {
		rep.Find("FEAT %s", strings.Join(strings.Fields(feat), " "))
	} else if err == nil {
		rep.Refuse("FEAT: %d %s", code, feat)
	}
	send("QUIT")
	b.WriteString("    </device_info>\n")
	// No login was tried: the clone lets nobody in (add <ftp_users> to offer logins).
	b.WriteString("    <ftp_users>\n        <anon_login enabled=\"False\"></anon_login>\n    </ftp_users>\n")
	rep.Skip("logins and listings: the cloner never logs in")
	tpl.Section("ftp", 21, b.String())
	return nil
}
