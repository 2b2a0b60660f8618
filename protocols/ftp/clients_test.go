package ftp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
	"github.com/icsnare/icsnare/protocols/vfs/vfstest"
)

func curl(t *testing.T, args ...string) string {
	t.Helper()
	protocoltest.NeedTool(t, "curl")
	out, err := protocoltest.Run(t, 20*time.Second, "curl", append([]string{"-sS", "--max-time", "15"}, args...)...)
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	return out
}

func url(srv *vfstest.Server, path string) string {
	return fmt.Sprintf("ftp://%s%s", srv.Addr, path)
}

func TestCurl(t *testing.T) {
	srv := startProfile(t, "conpot", nil)
	p := protocoltest.Profile(t, "testdata/conpot")
	other := vfstest.ServeTCP(t, Name, srv.svc, protocoltest.Host(p, srv.Host.Addr.Next(), 2),
		netip.AddrPortFrom(srv.Host.Addr.Next(), 0).String())

	const line = "-rwxrwxrwx   1 nobody   ftp            49 Aug 01  2018 ftp_data.txt\n" // curl writes listings with Unix line ends
	// Anonymous listing over EPSV (curl's default), then over PASV.
	if out := curl(t, url(srv.Server, "/")); out != line {
		t.Fatalf("anonymous EPSV listing %q", out)
	}
	if out := curl(t, "--disable-epsv", url(srv.Server, "/")); out != line {
		t.Fatalf("anonymous PASV listing %q", out)
	}
	// A named user downloads.
	if out := curl(t, "-u", "nobody:nobody", url(srv.Server, "/ftp_data.txt")); out != "This is just a test file for Conpot's FTP server\n" {
		t.Fatalf("download %q", out)
	}
	// Wrong password: curl reports the 530.
	protocoltest.NeedTool(t, "curl")
	if out, err := protocoltest.Run(t, 20*time.Second, "curl", "-sS", "-u", "nobody:wrong", url(srv.Server, "/")); err == nil ||
		!strings.Contains(out, "530") {
		t.Fatalf("wrong password: %v %q", err, out)
	}
	// Upload with -T, passive and EPSV.
	payload := []byte("MZ\x90\x00 not really a PE file " + t.Name())
	local := filepath.Join(t.TempDir(), "payload.exe")
	os.WriteFile(local, payload, 0o644)
	curl(t, "-u", "test_user:test", "-T", local, url(srv.Server, "/payload.exe"))
	curl(t, "--disable-epsv", "-T", local, url(srv.Server, "/anon.exe")) // anonymous
	sha := sum(payload)
	if b, err := os.ReadFile(filepath.Join(srv.capture, sha)); err != nil || string(b) != string(payload) {
		t.Fatalf("capture %s: %v", sha, err)
	}
	ups := srv.Events.OfType("ftp.upload")
	if len(ups) != 2 {
		t.Fatalf("%d upload events", len(ups))
	}
	f := map[string]any{}
	for _, x := range ups[0].Fields {
		f[x.Key] = x.Value
	}
	if f["name"] != "/payload.exe" || f["sha256"] != sha || f["bytes"] != len(payload) || ups[0].Src.Addr().String() != "127.0.0.1" ||
		ups[0].Dst.Addr() != srv.Host.Addr || ups[0].Protocol != "ftp" {
		t.Fatalf("upload event %+v %+v", ups[0], f)
	}
	// The next listing on that host shows the uploads (owned by the uploader, upload perms) …
	out := curl(t, "-u", "nobody:nobody", url(srv.Server, "/"))
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^-rwxr-xr-x   1 ftp      ftp      +\d+ \w{3} \d\d \d\d:\d\d anon.exe$`),
		regexp.MustCompile(`(?m)^-rwxr-xr-x   1 test_user ftp      +\d+ \w{3} \d\d \d\d:\d\d payload.exe$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("listing lacks %s:\n%s", want, out)
		}
	}
	// … another host does not.
	if out := curl(t, url(other, "/")); out != line {
		t.Fatalf("the other host lists %q", out)
	}
	// MLSD listing through curl's custom request.
	if out := curl(t, "-u", "nobody:nobody", "-X", "MLSD", url(srv.Server, "/")); !strings.Contains(out, "type=file;size=49;modify=20180801193912;perm=radfw;unix.mode=0777;unix.uid=13;unix.gid=45; ftp_data.txt") {
		t.Fatalf("MLSD %q", out)
	}
	// Active mode (PORT to curl's own address).
	if out := curl(t, "-P", "-", "-u", "nobody:nobody", url(srv.Server, "/ftp_data.txt")); out != "This is just a test file for Conpot's FTP server\n" {
		t.Fatalf("active download %q", out)
	}
}

func TestLftp(t *testing.T) {
	protocoltest.NeedTool(t, "lftp")
	srv := startProfile(t, "conpot", nil)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "put.txt"), []byte("uploaded by lftp\n"), 0o644)
	script := fmt.Sprintf(`set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes;
open -u nobody,nobody -p %d %s;
ls; mkdir logs; cd logs; pwd; put put.txt; ls; cd ..; get ftp_data.txt -o got.txt; quit`, srv.Addr.Port(), srv.Addr.Addr())
	cmd := []string{"-c", script}
	out, err := runIn(t, dir, "lftp", cmd...)
	if err != nil {
		t.Fatalf("lftp: %v\n%s", err, out)
	}
	for _, want := range []string{
		"-rwxrwxrwx   1 nobody   ftp            49 Aug 01  2018 ftp_data.txt",
		"/logs",
		"put.txt",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lftp output lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "got.txt")); err != nil || string(b) != "This is just a test file for Conpot's FTP server\n" {
		t.Fatalf("lftp get: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(srv.capture, sum([]byte("uploaded by lftp\n")))); err != nil || string(b) != "uploaded by lftp\n" {
		t.Fatalf("lftp put not captured: %v", err)
	}
	// lftp asked for TLS first (AUTH TLS) and went on in the clear after the refusal.
	var auth bool
	for _, e := range srv.Events.OfType("ftp.command") {
		if e.Fields[0].Value == "AUTH" && e.Fields[2].Value == 500 {
			auth = true
		}
	}
	if !auth {
		t.Error("lftp did not try AUTH TLS (or it was not refused)")
	}
}

func TestNmap(t *testing.T) {
	protocoltest.NeedTool(t, "nmap")
	for _, tc := range []struct {
		profile string
		want    []string
		not     []string
	}{
		{"conpot", []string{"ftp-anon: Anonymous FTP login allowed (FTP code 230)", "ftp_data.txt"}, nil},
		{"noanon", []string{"VxWorks ftpd 5.4.2"}, []string{"Anonymous FTP login allowed"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			srv := startProfile(t, tc.profile, nil)
			out, err := protocoltest.Run(t, 3*time.Minute, "nmap", "-Pn", "-n", "-sV", "-p", fmt.Sprint(srv.Addr.Port()),
				"--script", "ftp-anon,ftp-syst", srv.Addr.Addr().String())
			if err != nil {
				t.Fatalf("nmap: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("nmap output lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("nmap output has %q", w)
				}
			}
		})
	}
}
