package ftp

import (
	"fmt"
	"io/fs"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/icsnare/icsnare/protocols"
	"github.com/icsnare/icsnare/protocols/vfs"
)

// cmdSpec describes one command.
type cmdSpec struct {
	needArg bool // 501 without an argument
	noArg   bool // 501 with one
	auth    bool // 530 before login
	conpot  bool // one of Conpot's commands, subject to its enabled_commands
	syntax  string
	fn      func(c *conn, arg string) int
}

var commands map[string]*cmdSpec

func init() {
	commands = map[string]*cmdSpec{
		"USER": {needArg: true, conpot: true, syntax: "USER <SP> user-name (set username).", fn: (*conn).cmdUSER},
		"PASS": {conpot: true, syntax: "PASS [<SP> password] (set user password).", fn: (*conn).cmdPASS},
		"QUIT": {noArg: true, conpot: true, syntax: "QUIT (quit current session).", fn: (*conn).cmdQUIT},
		"REIN": {noArg: true, conpot: true, syntax: "REIN (flush account).", fn: (*conn).cmdREIN},
		"NOOP": {noArg: true, conpot: true, syntax: "NOOP (just do nothing).", fn: (*conn).cmdNOOP},
		"SYST": {noArg: true, conpot: true, syntax: "SYST (get operating system type).", fn: (*conn).cmdSYST},
		"HELP": {conpot: true, syntax: "HELP [<SP> cmd] (show help).", fn: (*conn).cmdHELP},
		"FEAT": {noArg: true, syntax: "FEAT (list all new features supported).", fn: (*conn).cmdFEAT},
		"OPTS": {needArg: true, syntax: "OPTS <SP> cmd [<SP> option] (set option for command).", fn: (*conn).cmdOPTS},
		"TYPE": {needArg: true, auth: true, conpot: true, syntax: "TYPE <SP> [A | I] (set transfer type).", fn: (*conn).cmdTYPE},
		"MODE": {needArg: true, auth: true, conpot: true, syntax: "MODE <SP> mode (noop; set data transfer mode).", fn: (*conn).cmdMODE},
		"STRU": {needArg: true, auth: true, conpot: true, syntax: "STRU <SP> type (noop; set file structure).", fn: (*conn).cmdSTRU},
		"ALLO": {needArg: true, auth: true, conpot: true, syntax: "ALLO <SP> bytes (noop; allocate storage).", fn: (*conn).cmdALLO},
		"PWD":  {noArg: true, auth: true, conpot: true, syntax: "PWD (get current working directory).", fn: (*conn).cmdPWD},
		"XPWD": {noArg: true, auth: true, conpot: true, syntax: "XPWD (obsolete) (get current dir).", fn: (*conn).cmdPWD},
		"CWD":  {auth: true, conpot: true, syntax: "CWD [<SP> dir-name] (change working directory).", fn: (*conn).cmdCWD},
		"XCWD": {auth: true, conpot: true, syntax: "XCWD <SP> dir-name (obsolete) (change directory).", fn: (*conn).cmdCWD},
		"CDUP": {noArg: true, auth: true, conpot: true, syntax: "CDUP (go to parent directory).", fn: (*conn).cmdCDUP},
		"XCUP": {noArg: true, auth: true, conpot: true, syntax: "XCUP (obsolete) (go to parent directory).", fn: (*conn).cmdCDUP},
		"MKD":  {needArg: true, auth: true, conpot: true, syntax: "MKD <SP> path (create directory).", fn: (*conn).cmdMKD},
		"XMKD": {needArg: true, auth: true, conpot: true, syntax: "XMKD <SP> path (obsolete) (create directory).", fn: (*conn).cmdMKD},
		"RMD":  {needArg: true, auth: true, conpot: true, syntax: "RMD <SP> dir-name (remove directory).", fn: (*conn).cmdRMD},
		"XRMD": {needArg: true, auth: true, conpot: true, syntax: "XRMD <SP> dir-name (obsolete) (remove directory).", fn: (*conn).cmdRMD},
		"DELE": {needArg: true, auth: true, conpot: true, syntax: "DELE <SP> file-name (delete file).", fn: (*conn).cmdDELE},
		"RNFR": {needArg: true, auth: true, conpot: true, syntax: "RNFR <SP> file-name (rename (source name)).", fn: (*conn).cmdRNFR},
		"RNTO": {needArg: true, auth: true, conpot: true, syntax: "RNTO <SP> file-name (rename (destination name)).", fn: (*conn).cmdRNTO},
		"SIZE": {needArg: true, auth: true, conpot: true, syntax: "SIZE <SP> file-name (get file size).", fn: (*conn).cmdSIZE},
		"MDTM": {needArg: true, auth: true, conpot: true, syntax: "MDTM <SP> path (file last modification time).", fn: (*conn).cmdMDTM},
		"STAT": {auth: true, conpot: true, syntax: "STAT [<SP> path name] (server stats [list files]).", fn: (*conn).cmdSTAT},
		"PASV": {noArg: true, auth: true, conpot: true, syntax: "PASV (open passive data connection).", fn: (*conn).cmdPASV},
		"EPSV": {auth: true, syntax: "EPSV [<SP> proto/\"ALL\"] (open passive data connection).", fn: (*conn).cmdEPSV},
		"PORT": {needArg: true, auth: true, conpot: true, syntax: "PORT <SP> h,h,h,h,p,p (open active data connection).", fn: (*conn).cmdPORT},
		"EPRT": {needArg: true, auth: true, syntax: "EPRT <SP> |proto|ip|port| (open active data connection).", fn: (*conn).cmdEPRT},
		"LIST": {auth: true, conpot: true, syntax: "LIST [<SP> path] (list files).", fn: (*conn).cmdLIST},
		"NLST": {auth: true, conpot: true, syntax: "NLST [<SP> path] (list path in a compact form).", fn: (*conn).cmdNLST},
		"MLSD": {auth: true, syntax: "MLSD [<SP> path] (list directory).", fn: (*conn).cmdMLSD},
		"MLST": {auth: true, syntax: "MLST [<SP> path] (show information about path).", fn: (*conn).cmdMLST},
		"RETR": {needArg: true, auth: true, conpot: true, syntax: "RETR <SP> file-name (retrieve a file).", fn: (*conn).cmdRETR},
		"STOR": {needArg: true, auth: true, conpot: true, syntax: "STOR <SP> file-name (store a file).", fn: func(c *conn, a string) int { return c.store("STOR", a) }},
		"APPE": {needArg: true, auth: true, conpot: true, syntax: "APPE <SP> file-name (append data to file).", fn: func(c *conn, a string) int { return c.store("APPE", a) }},
		"STOU": {auth: true, conpot: true, syntax: "STOU [<SP> name] (store a file with a unique name).", fn: func(c *conn, a string) int { return c.store("STOU", a) }},
		"REST": {needArg: true, auth: true, conpot: true, syntax: "REST <SP> offset (set file offset).", fn: (*conn).cmdREST},
		"ABOR": {noArg: true, auth: true, conpot: true, syntax: "ABOR (abort transfer).", fn: (*conn).cmdABOR},
		"SITE": {needArg: true, auth: true, conpot: true, syntax: "SITE <SP> site-command (execute SITE command).", fn: (*conn).cmdSITE},
	}
}

// enabled reports whether verb is served under this profile.
func (c *conn) enabledCmd(verb string) bool {
	spec, ok := commands[verb]
	return ok && (c.cfg.enabled == nil || !spec.conpot || c.cfg.enabled[verb])
}

func (c *conn) cmdUSER(arg string) int {
	if c.loggedIn {
		return c.reply(530, "Cannot switch to another user.")
	}
	c.pendingUser, c.haveUser = arg, true
	return c.reply(331, "Now specify the Password.")
}

// check returns whether name and password log in, with the uid and the shown name.
func (cf *config) check(name, password string) (bool, int, string, bool) {
	for _, u := range cf.users {
		if u.name == name {
			return u.password == password, u.uid, u.name, false
		}
	}
	if cf.anon && (strings.EqualFold(name, "anonymous") || name == "ftp" || name == cf.anonName) {
		return true, cf.anonUID, cf.anonName, true
	}
	return false, 0, "", false
}

func (c *conn) cmdPASS(arg string) int {
	if !c.haveUser {
		return c.reply(503, "Login with USER first.")
	}
	name := c.pendingUser
	c.haveUser = false
	ok, uid, shown, anon := c.cfg.check(name, arg)
	c.s.EmitText("login", nil, nil, protocols.F("user", name), protocols.F("password", arg),
		protocols.F("success", ok), protocols.F("anonymous", anon))
	if !ok {
		c.failures++
		return c.reply(530, "Authentication Failed.")
	}
	c.loggedIn, c.user, c.uid = true, shown, uid
	if c.cfg.motd != "" {
		return c.replyLines(230, c.cfg.motd, nil, "Log in Successful.")
	}
	return c.reply(230, "Log in Successful.")
}

func (c *conn) cmdQUIT(string) int {
	c.quit = true
	return c.reply(221, "Bye.")
}

func (c *conn) cmdREIN(string) int {
	c.closeData()
	c.loggedIn, c.haveUser, c.user, c.uid, c.cwd, c.rest, c.rnfr = false, false, "", 0, "/", 0, ""
	return c.reply(230, "Ready for new user.")
}

func (c *conn) cmdNOOP(string) int { return c.reply(200, "I successfully done nothin'.") }

func (c *conn) cmdSYST(string) int { return c.reply(215, c.cfg.syst) }

func (c *conn) cmdHELP(arg string) int {
	if arg != "" {
		verb := strings.ToUpper(strings.TrimSpace(arg))
		if !c.enabledCmd(verb) {
			return c.reply(501, "Unrecognized command.")
		}
		return c.reply(214, "Syntax: "+commands[verb].syntax)
	}
	var names []string
	for v := range commands {
		if c.enabledCmd(v) {
			names = append(names, v)
		}
	}
	sort.Strings(names)
	var lines []string
	for i := 0; i < len(names); i += 8 {
		var b strings.Builder
		for _, n := range names[i:min(i+8, len(names))] {
			fmt.Fprintf(&b, " %-7s", n)
		}
		lines = append(lines, strings.TrimRight(b.String(), " "))
	}
	return c.replyLines(214, "The following commands are recognized:", lines, "Help command successful.")
}

func (c *conn) cmdFEAT(string) int {
	var feats []string
	for _, f := range []struct{ cmd, line string }{
		{"EPRT", " EPRT"}, {"EPSV", " EPSV"}, {"MDTM", " MDTM"},
		{"MLST", " MLST type*;size*;modify*;perm*;unix.mode*;unix.uid*;unix.gid*;"},
		{"REST", " REST STREAM"}, {"SIZE", " SIZE"}, {"", " TVFS"}, {"", " UTF8"},
	} {
		if f.cmd == "" || c.enabledCmd(f.cmd) {
			feats = append(feats, f.line)
		}
	}
	return c.replyLines(211, "Features supported:", feats, "End FEAT.")
}

func (c *conn) cmdOPTS(arg string) int {
	opt, val, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(opt) {
	case "UTF8", "UTF-8":
		if val == "" || strings.EqualFold(val, "ON") {
			return c.reply(200, "Always in UTF8 mode.")
		}
		return c.reply(501, "Invalid argument.")
	case "MLST":
		return c.reply(200, "MLST OPTS type;size;modify;perm;unix.mode;unix.uid;unix.gid;")
	}
	return c.reply(501, "Invalid argument.")
}

func (c *conn) cmdTYPE(arg string) int {
	switch strings.ToUpper(strings.ReplaceAll(arg, " ", "")) {
	case "A", "AN", "L7":
		c.binary = false
		return c.reply(200, "Type set to: ASCII.")
	case "I", "L8":
		c.binary = true
		return c.reply(200, "Type set to: Binary.")
	}
	return c.reply(504, fmt.Sprintf("Unsupported type '%s'.", printable(arg)))
}

func (c *conn) cmdMODE(arg string) int {
	switch strings.ToUpper(arg) {
	case "S":
		return c.reply(200, "Transfer mode set to: S")
	case "B", "C":
		return c.reply(504, "Unimplemented MODE type.")
	}
	return c.reply(501, "Unrecognized MODE type.")
}

func (c *conn) cmdSTRU(arg string) int {
	switch strings.ToUpper(arg) {
	case "F":
		return c.reply(200, "File transfer structure set to: F.")
	case "P", "R":
		return c.reply(504, "Unimplemented STRU type.")
	}
	return c.reply(501, "Unrecognized STRU type.")
}

func (c *conn) cmdALLO(string) int { return c.reply(202, "No storage allocation necessary.") }

func quote(p string) string { return `"` + strings.ReplaceAll(p, `"`, `""`) + `"` }

func (c *conn) cmdPWD(string) int {
	return c.reply(257, quote(c.cwd)+" is the current directory.")
}

func (c *conn) cmdCWD(arg string) int {
	if arg == "" {
		arg = "/"
	}
	p, code, ok := c.path("CWD", arg)
	if !ok {
		return code
	}
	inf, err := c.view.Stat(p)
	if err != nil || !inf.Dir {
		return c.reply(550, "No such file or directory.")
	}
	c.cwd = p
	return c.reply(250, quote(p)+" is the current directory.")
}

func (c *conn) cmdCDUP(string) int {
	if c.cwd == "/" {
		return c.reply(250, quote("/")+" is the current directory.")
	}
	return c.cmdCWD("..")
}

func (c *conn) meta(perm int) vfs.Meta {
	now := time.Now().UTC()
	return vfs.Meta{Perm: modeBits(perm), UID: c.uid, GID: c.cfg.gid, ModTime: now, ATime: now}
}

func (c *conn) cmdMKD(arg string) int {
	p, code, ok := c.path("MKD", arg)
	if !ok {
		return code
	}
	if err := c.view.Mkdir(p, c.meta(c.cfg.mkdirPerms|0o700)); err != nil {
		return c.reply(550, "Create directory operation failed.")
	}
	return c.reply(257, quote(p)+" directory created.")
}

func (c *conn) cmdRMD(arg string) int {
	p, code, ok := c.path("RMD", arg)
	if !ok {
		return code
	}
	if p == "/" {
		return c.reply(550, "Can't remove root directory.")
	}
	if err := c.view.Remove(p, true); err != nil {
		return c.reply(550, "Remove directory operation failed.")
	}
	if strings.HasPrefix(c.cwd+"/", p+"/") {
		c.cwd = "/"
	}
	return c.reply(250, "Directory removed.")
}

func (c *conn) cmdDELE(arg string) int {
	p, code, ok := c.path("DELE", arg)
	if !ok {
		return code
	}
	if err := c.view.Remove(p, false); err != nil {
		return c.reply(550, "Failed to delete file.")
	}
	c.s.EmitText("delete", nil, nil, protocols.F("name", p))
	return c.reply(250, "File removed.")
}

func (c *conn) cmdRNFR(arg string) int {
	p, code, ok := c.path("RNFR", arg)
	if !ok {
		return code
	}
	if p == "/" {
		return c.reply(550, "Can't rename home directory.")
	}
	if _, err := c.view.Stat(p); err != nil {
		return c.reply(550, "No such file or directory.")
	}
	c.rnfr = p
	return c.reply(350, "Ready for destination name.")
}

func (c *conn) cmdRNTO(arg string) int {
	from := c.rnfr
	c.rnfr = ""
	if from == "" {
		return c.reply(503, "Bad sequence of commands: use RNFR first.")
	}
	p, code, ok := c.path("RNTO", arg)
	if !ok {
		return code
	}
	if err := c.view.Rename(from, p); err != nil {
		return c.reply(550, "Rename failed.")
	}
	c.s.EmitText("rename", nil, nil, protocols.F("from", from), protocols.F("to", p))
	return c.reply(250, "Renaming ok.")
}

func (c *conn) cmdSIZE(arg string) int {
	if !c.binary {
		return c.reply(550, "SIZE not allowed in ASCII mode.")
	}
	p, code, ok := c.path("SIZE", arg)
	if !ok {
		return code
	}
	inf, err := c.view.Stat(p)
	if err != nil || inf.Dir {
		return c.reply(550, p+" is not retrievable.")
	}
	return c.reply(213, strconv.FormatInt(inf.Size, 10))
}

func (c *conn) cmdMDTM(arg string) int {
	p, code, ok := c.path("MDTM", arg)
	if !ok {
		return code
	}
	inf, err := c.view.Stat(p)
	if err != nil || inf.Dir {
		return c.reply(550, p+" is not retrievable")
	}
	return c.reply(213, inf.ModTime.UTC().Format("20060102150405"))
}

func (c *conn) cmdSTAT(arg string) int {
	if arg == "" {
		login := "Waiting for username."
		if c.loggedIn {
			login = "Logged in as: " + c.user
		}
		typ := "ASCII"
		if c.binary {
			typ = "Binary"
		}
		dc := "Data connection closed."
		if c.data != nil && c.data.ep != nil {
			dc = "Passive data channel waiting for connection."
		} else if c.data != nil {
			dc = "Active data channel ready."
		}
		return c.replyLines(211, "FTP server status:", []string{
			" Connected to: " + c.s.Remote.String(), " " + login,
			" TYPE: " + typ + "; STRUcture: File; MODE: Stream", " " + dc,
		}, "End of status.")
	}
	p, code, ok := c.path("STAT", listArg(arg))
	if !ok {
		return code
	}
	ents, err := c.view.ReadDir(p)
	if err != nil {
		return c.reply(550, "No such file or directory.")
	}
	now := time.Now()
	lines := make([]string, 0, len(ents))
	for _, e := range ents[:min(len(ents), maxListEntries)] {
		lines = append(lines, c.lsLine(e, now))
	}
	return c.replyLines(213, "Status of "+quote(p)+":", lines, "End of status.")
}

func (c *conn) cmdPASV(string) int {
	if !c.s.Local.Addr().Unmap().Is4() {
		return c.reply(425, "Can't open passive connection: use EPSV.")
	}
	ep, err := c.s.OpenTCP()
	if err != nil {
		return c.reply(425, "Can't open passive connection.")
	}
	c.closeData()
	c.data = &dataChan{ep: ep}
	a := c.s.Local.Addr().Unmap().As4()
	port := ep.Port()
	return c.reply(227, fmt.Sprintf("Entering Passive Mode (%d,%d,%d,%d,%d,%d).", a[0], a[1], a[2], a[3], port>>8, port&0xff))
}

func (c *conn) cmdEPSV(arg string) int {
	switch strings.ToUpper(arg) {
	case "", "1", "2":
	case "ALL":
		return c.reply(200, "EPSV ALL command successful.")
	default:
		return c.reply(522, "Network protocol not supported, use (1,2).")
	}
	ep, err := c.s.OpenTCP()
	if err != nil {
		return c.reply(425, "Can't open passive connection.")
	}
	c.closeData()
	c.data = &dataChan{ep: ep}
	return c.reply(229, fmt.Sprintf("Entering extended passive mode (|||%d|).", ep.Port()))
}

// activeTarget checks an active-mode address: only the client's own address (no FTP
// bounce) and no privileged port.
func (c *conn) activeTarget(ap netip.AddrPort) int {
	if ap.Addr().Unmap() != c.s.Remote.Addr().Unmap() {
		c.s.EmitText("bounce_refused", nil, nil, protocols.F("target", ap.String()))
		return c.reply(501, "Rejected data connection to foreign address.")
	}
	if ap.Port() < 1024 {
		return c.reply(501, "Can't connect over a privileged port.")
	}
	c.closeData()
	c.data = &dataChan{active: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	return 0
}

// parsePORT reads "h1,h2,h3,h4,p1,p2".
func parsePORT(arg string) (netip.AddrPort, bool) {
	f := strings.Split(strings.TrimSpace(arg), ",")
	if len(f) != 6 {
		return netip.AddrPort{}, false
	}
	var b [6]byte
	for i, s := range f {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 255 {
			return netip.AddrPort{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])), true
}

// parseEPRT reads "|1|192.0.2.1|6275|" (any delimiter; 1 IPv4, 2 IPv6).
func parseEPRT(arg string) (netip.AddrPort, bool) {
	if len(arg) < 7 {
		return netip.AddrPort{}, false
	}
	f := strings.Split(arg, arg[:1])
	if len(f) != 5 || f[0] != "" || f[4] != "" {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil || a.Zone() != "" || (f[1] == "1") != a.Is4() || (f[1] != "1" && f[1] != "2") {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(port)), true
}

func (c *conn) cmdPORT(arg string) int {
	ap, ok := parsePORT(arg)
	if !ok {
		return c.reply(501, "Invalid PORT format.")
	}
	if code := c.activeTarget(ap); code != 0 {
		return code
	}
	return c.reply(200, "PORT Command Successful. Consider using PASV.")
}

func (c *conn) cmdEPRT(arg string) int {
	ap, ok := parseEPRT(arg)
	if !ok {
		return c.reply(501, "Invalid EPRT format.")
	}
	if code := c.activeTarget(ap); code != 0 {
		return code
	}
	return c.reply(200, "EPRT command successful.")
}

// listArg drops ls options ("-la") from a LIST argument.
func listArg(arg string) string {
	f := strings.Fields(arg)
	for len(f) > 0 && strings.HasPrefix(f[0], "-") {
		f = f[1:]
	}
	return strings.Join(f, " ")
}

// listing resolves a LIST/NLST/MLSD argument and reads the directory.
func (c *conn) listing(verb, arg string) ([]vfs.Info, int, bool) {
	arg = listArg(arg)
	if strings.ContainsAny(arg, "*?[") {
		return nil, c.reply(550, "Globbing not supported."), false
	}
	p, code, ok := c.path(verb, arg)
	if !ok {
		return nil, code, false
	}
	ents, err := c.view.ReadDir(p)
	if err != nil {
		return nil, c.reply(550, "No such file or directory."), false
	}
	return ents[:min(len(ents), maxListEntries)], 0, true
}

func (c *conn) cmdLIST(arg string) int {
	ents, code, ok := c.listing("LIST", arg)
	if !ok {
		return code
	}
	var b strings.Builder
	now := time.Now()
	for _, e := range ents {
		b.WriteString(c.lsLine(e, now))
		b.WriteString("\r\n")
	}
	code, _ = c.sendFramed([]byte(b.String()), "Here comes the directory listing.", "Directory send OK.")
	return code
}

func (c *conn) cmdNLST(arg string) int {
	ents, code, ok := c.listing("NLST", arg)
	if !ok {
		return code
	}
	var b strings.Builder
	for _, e := range ents {
		b.WriteString(e.Name)
		b.WriteString("\r\n")
	}
	code, _ = c.sendFramed([]byte(b.String()), "Here comes the directory listing.", "Directory send OK.")
	return code
}

func (c *conn) cmdMLSD(arg string) int {
	p, code, ok := c.path("MLSD", arg)
	if !ok {
		return code
	}
	if inf, err := c.view.Stat(p); err != nil || !inf.Dir {
		return c.reply(501, "No such directory.")
	}
	ents, code, ok := c.listing("MLSD", arg)
	if !ok {
		return code
	}
	var b strings.Builder
	for _, e := range ents {
		b.WriteString(c.facts(e))
		b.WriteString(" ")
		b.WriteString(e.Name)
		b.WriteString("\r\n")
	}
	code, _ = c.sendFramed([]byte(b.String()), "Here comes the directory listing.", "Directory send OK.")
	return code
}

func (c *conn) cmdMLST(arg string) int {
	p, code, ok := c.path("MLST", arg)
	if !ok {
		return code
	}
	inf, err := c.view.Stat(p)
	if err != nil {
		return c.reply(550, "No such file or directory.")
	}
	return c.replyLines(250, "Listing "+p, []string{" " + c.facts(inf) + " " + p}, "End MLST.")
}

func (c *conn) cmdRETR(arg string) int {
	p, code, ok := c.path("RETR", arg)
	if !ok {
		return code
	}
	b, inf, err := c.view.ReadFile(p)
	if err != nil || inf.Dir {
		return c.reply(550, "The system cannot find the file specified.")
	}
	rest := c.rest
	c.rest = 0
	if rest > int64(len(b)) {
		return c.reply(554, "Invalid REST parameter.")
	}
	b = b[rest:]
	if !c.binary {
		b = toCRLF(b)
	}
	code, ok = c.sendFramed(b, "File status okay. About to open data connection.", "Transfer complete.")
	if ok {
		c.s.EmitText("download", nil, nil, protocols.F("direction", "download"), protocols.F("name", p),
			protocols.F("bytes", len(b)), protocols.F("sha256", sum(b)), protocols.F("offset", rest))
	}
	return code
}

// toCRLF converts bare LF line ends to CRLF (ASCII type).
func toCRLF(b []byte) []byte {
	n := strings.Count(string(b), "\n")
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, x := range b {
		if x == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, x)
	}
	return out
}

func (c *conn) cmdREST(arg string) int {
	if !c.binary {
		return c.reply(501, "Resuming transfers not allowed in ASCII mode.")
	}
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 {
		return c.reply(501, "Invalid parameter.")
	}
	c.rest = n
	return c.reply(350, fmt.Sprintf("Restarting at position %d.", n))
}

func (c *conn) cmdABOR(string) int {
	if c.data == nil {
		return c.reply(225, "No transfer to abort.")
	}
	c.closeData()
	return c.reply(225, "ABOR command successful.")
}

func (c *conn) cmdSITE(arg string) int {
	sub, rest, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(sub) {
	case "HELP":
		return c.replyLines(214, "The following SITE commands are recognized:", []string{" CHMOD", " HELP"}, "Help SITE command successful.")
	case "CHMOD":
		mode, target, _ := strings.Cut(strings.TrimSpace(rest), " ")
		m, err := strconv.ParseUint(mode, 8, 32)
		if err != nil || m > 0o777 || target == "" {
			return c.reply(501, "Invalid SITE CHMOD format.")
		}
		p, code, ok := c.path("SITE CHMOD", target)
		if !ok {
			return code
		}
		if err := c.view.SetMeta(p, func(mt *vfs.Meta) { mt.Perm = fs.FileMode(m) }); err != nil {
			return c.reply(550, "No such file or directory.")
		}
		return c.reply(200, "SITE CHMOD successful.")
	}
	return c.reply(500, fmt.Sprintf("Command 'SITE %s' not understood", printable(strings.ToUpper(sub))))
}

// sendFramed is send with the 150 and 226 texts of the command.
func (c *conn) sendFramed(b []byte, start, done string) (int, bool) {
	if c.data == nil {
		return c.reply(425, "Use PORT or PASV first."), false
	}
	c.reply(150, start)
	c.flush()
	dc, err := c.openData()
	if err != nil {
		return c.reply(425, "Can't open data connection."), false
	}
	stop := c.watch(dc)
	_, err = dc.Write(b)
	dc.Close()
	c.aborted = stop()
	if err != nil {
		return c.reply(426, "Connection closed; transfer aborted."), false
	}
	return c.reply(226, done), true
}

// modeBits converts Conpot's integer permissions to fs.FileMode bits.
func modeBits(p int) fs.FileMode { return fs.FileMode(p) & fs.ModePerm }
