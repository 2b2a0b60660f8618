package ftp

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The exchanges of Conpot's test_ftp.py against its default template (conpot.md §3.5).
// Where Conpot is wrong (greeting 200, MOTD in a 220 reply, PASV on 127.0.0.1, PORT to
// anyone) the test asserts the correct behaviour instead.

func TestConpotAuth(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	if code, text := c.read(); code != 220 || text != "220 FTP server ready.\r\n" {
		t.Fatalf("greeting %q", text)
	}
	c.cmd("USER anonymous")
	if code, text := c.cmd("PASS guest@example.com"); code != 230 || !strings.Contains(text, "Technodrome - Mouser Factory.") {
		t.Fatalf("anonymous login: %q", text)
	}
	c.expect("PWD", `257 "/" is the current directory.`)
	c.expect("USER nobody", "530 Cannot switch to another user.")
	c.expect("QUIT", "221 Bye.")

	c = dial(t, srv)
	c.read()
	c.cmd("USER nobody")
	if code, text := c.cmd("PASS nobody"); code != 230 || !strings.Contains(text, "Authorized personnel only") {
		t.Fatalf("nobody login: %q", text)
	}
	logins := srv.Events.OfType("ftp.login")
	if len(logins) != 2 || logins[1].Fields[0].Value != "nobody" || logins[1].Fields[2].Value != true {
		t.Fatalf("login events %+v", logins)
	}
}

func TestConpotCommands(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	c.read()
	c.expect("STAT", "530 Log in with USER and PASS first.")
	c.expect("PASS x", "503 Login with USER first.")
	c.login("nobody", "nobody")
	for _, x := range [][2]string{
		{"NOOP", "200 I successfully done nothin'."},
		{"STRU F", "200 File transfer structure set to: F."},
		{"STRU P", "504 Unimplemented STRU type."},
		{"STRU R", "504 Unimplemented STRU type."},
		{"STRU invalid_stru_cmd", "501 Unrecognized STRU type."},
		{"ALLO 250", "202 No storage allocation necessary."},
		{"SYST", "215 UNIX Type: L8"},
		{"MODE", "501 Syntax error: command needs an argument"},
		{"MODE S", "200 Transfer mode set to: S"},
		{"MODE B", "504 Unimplemented MODE type."},
		{"SITE", "501 Syntax error: command needs an argument"},
		{"TYPE I", "200 Type set to: Binary."},
		{"TYPE L8", "200 Type set to: Binary."},
		{"TYPE A", "200 Type set to: ASCII."},
		{"TYPE L7", "200 Type set to: ASCII."},
		{"TYPE 234", "504 Unsupported type '234'."},
		{"SIZE ftp_data.txt", "550 SIZE not allowed in ASCII mode."},
		{"TYPE I", "200 Type set to: Binary."},
		{"SIZE ftp_data.txt", "213 49"},
		{"SIZE this_file_does_not_exist.txt", "550 /this_file_does_not_exist.txt is not retrievable."},
		{"MDTM ftp_data.txt", "213 20180801193912"},
		{"MDTM this_file_does_not_exist.txt", "550 /this_file_does_not_exist.txt is not retrievable"},
		{"PWD", `257 "/" is the current directory.`},
		{"MKD testing", `257 "/testing" directory created.`},
		{"MKD /../../testing/testing", "550 'mkd /../../testing/testing' points to a path which is outside the user's root directory."},
		{"MKD testing/testing", `257 "/testing/testing" directory created.`},
		{"MKD testing/testing/../demo", `257 "/testing/demo" directory created.`},
		{"CWD testing", `250 "/testing" is the current directory.`},
		{"PWD", `257 "/testing" is the current directory.`},
		{"CDUP", `250 "/" is the current directory.`},
		{"CWD ../", "550 'cwd ../' points to a path which is outside the user's root directory."},
		{"MKD tmp", `257 "/tmp" directory created.`},
		{"RMD tmp", "250 Directory removed."},
		{"RMD tmp", "550 Remove directory operation failed."},
		{"RMD /", "550 Can't remove root directory."},
		{"RMD ../../", "550 'rmd ../../' points to a path which is outside the user's root directory."},
		{"RNFR /", "550 Can't rename home directory."},
		{"RNFR file_DNE", "550 No such file or directory."},
		{"RNTO /random_path", "503 Bad sequence of commands: use RNFR first."},
		{"SITE CHMOD 644 ftp_data.txt", "200 SITE CHMOD successful."},
		{"SITE CHMOD xyz ftp_data.txt", "501 Invalid SITE CHMOD format."},
		{"ABOR", "225 No transfer to abort."},
		{"HELP ABCD", "501 Unrecognized command."},
		{"HELP NOOP", "214 Syntax: NOOP (just do nothing)."},
		{"XYZ", "500 Command 'XYZ' not understood"},
		{"FEAT", "211-Features supported:"},
		{"EPSV ALL", "200 EPSV ALL command successful."},
		{"AUTH TLS", "500 Command 'AUTH' not understood"},
		{"OPTS UTF8 ON", "200 Always in UTF8 mode."},
	} {
		c.expect(x[0], x[1])
	}
	_, help := c.cmd("HELP")
	for _, want := range []string{"214-The following commands are recognized:", "NOOP", "RETR", "STOU", "214 Help command successful."} {
		if !strings.Contains(help, want) {
			t.Errorf("HELP lacks %q:\n%s", want, help)
		}
	}
	if !strings.Contains(help, "MLSD") || !strings.Contains(help, "EPSV") {
		t.Errorf("HELP lacks the extensions enabled_commands does not govern:\n%s", help)
	}
	_, site := c.cmd("SITE HELP")
	for _, want := range []string{"Help SITE command successful.", "HELP", "CHMOD"} {
		if !strings.Contains(site, want) {
			t.Errorf("SITE HELP lacks %q", want)
		}
	}
	_, stat := c.cmd("STAT")
	if !strings.Contains(stat, "Logged in as: nobody\r\n TYPE: Binary; STRUcture: File; MODE: Stream\r\n") {
		t.Errorf("STAT:\n%s", stat)
	}
	_, stat = c.cmd("STAT /")
	if !strings.Contains(stat, "-rw-r--r--   1 nobody   ftp            49 Aug 01  2018 ftp_data.txt") {
		t.Errorf("STAT / (after SITE CHMOD 644):\n%s", stat)
	}
	c.expect("TYPE A", "200 Type set to: ASCII.")
	c.expect("REST 10", "501 Resuming transfers not allowed in ASCII mode.")
	c.expect("TYPE I", "200 Type set to: Binary.")
	for _, bad := range []string{"REST str", "REST -1", "REST 10.1"} {
		c.expect(bad, "501 Invalid parameter.")
	}
	c.expect("REST", "501 Syntax error: command needs an argument")
	c.expect("REST 10", "350 Restarting at position 10.")
	c.expect("STOU", "450 Can't STOU while REST request is pending.")
	c.expect("APPE x", "450 Can't APPE while REST request is pending.")
	c.expect("REST 0", "350 Restarting at position 0.")
	c.expect("REIN", "230 Ready for new user.")
	c.expect("PASS testing", "503 Login with USER first.")
}

func TestConpotTransfers(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	c.read()
	c.login("nobody", "nobody")
	list, done := c.retrieve("LIST")
	if list != "-rwxrwxrwx   1 nobody   ftp            49 Aug 01  2018 ftp_data.txt\r\n" || !strings.HasPrefix(done, "226 ") {
		t.Fatalf("LIST %q, %q", list, done)
	}
	names, _ := c.retrieve("NLST")
	if names != "ftp_data.txt\r\n" {
		t.Fatalf("NLST %q", names)
	}
	body, _ := c.retrieve("RETR ftp_data.txt")
	if body != "This is just a test file for Conpot's FTP server\r\n" { // ASCII type: CRLF
		t.Fatalf("RETR (ASCII) %q", body)
	}
	c.expect("TYPE I", "200 Type set to: Binary.")
	body, _ = c.retrieve("RETR ftp_data.txt")
	if body != "This is just a test file for Conpot's FTP server\n" {
		t.Fatalf("RETR %q", body)
	}
	c.expect("RETR missing.txt", "550 The system cannot find the file specified.")
	if done := c.storeData("STOR ftp_testing_stor.txt", "This is just a test!\n"); !strings.HasPrefix(done, "226 ") {
		t.Fatalf("STOR: %q", done)
	}
	if done := c.storeData("APPE ftp_testing_stor.txt", "This is another test\n"); !strings.HasPrefix(done, "226 ") {
		t.Fatalf("APPE: %q", done)
	}
	body, _ = c.retrieve("RETR ftp_testing_stor.txt")
	if body != "This is just a test!\nThis is another test\n" {
		t.Fatalf("after APPE %q", body)
	}
	// Both uploads are in the capture directory under their hashes: the file as stored after
	// each (so APPE's capture is the whole file).
	for _, data := range []string{"This is just a test!\n", "This is just a test!\nThis is another test\n"} {
		b, err := os.ReadFile(filepath.Join(srv.capture, sum([]byte(data))))
		if err != nil || string(b) != data {
			t.Errorf("capture of %q: %q %v", data, b, err)
		}
	}
	ups := srv.Events.OfType("ftp.upload")
	if len(ups) != 2 {
		t.Fatalf("%d upload events", len(ups))
	}
	c.expect("RNFR ftp_testing_stor.txt", "350 Ready for destination name.")
	c.expect("RNTO new_data.txt", "250 Renaming ok.")
	c.expect("DELE new_data.txt", "250 File removed.")
	c.expect("DELE new_data.txt", "550 Failed to delete file.")
	// STOU names the file with the profile's prefix and suffix.
	d := c.pasv()
	code, text := c.cmd("STOU")
	if code != 150 || !strings.Contains(text, "FILE: conpot_test") || !strings.HasSuffix(strings.TrimSpace(text), "conpot_test") {
		t.Fatalf("STOU: %q", text)
	}
	d.Write([]byte("unique"))
	d.Close()
	c.read()
	// PASV is on the host's own address, never 127.0.0.1 for a host that is not.
	_, text = c.cmd("PASV")
	a := srv.Host.Addr.As4()
	if want := strings.Join([]string{itoa(a[0]), itoa(a[1]), itoa(a[2]), itoa(a[3])}, ","); !strings.Contains(text, "("+want+",") {
		t.Fatalf("PASV %q does not name the host %s", text, srv.Host.Addr)
	}
	c.expect("ABOR", "225 ABOR command successful.")
}

func itoa(b byte) string { return strconv.Itoa(int(b)) }

func TestConpotMaxRetries(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	c := dial(t, srv)
	c.read()
	for i := range 3 {
		c.cmd("USER nobody")
		if code, _ := c.cmd("PASS incorrect_pass"); code != 530 {
			t.Fatalf("attempt %d: %s", i, c.last)
		}
	}
	c.expect("USER nobody", "421 Too many connections. Service temporarily unavailable.")
	c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatal("connection still open after 421")
	}
}
