package vfs

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/icsnare/icsnare/profiles"
)

// Generated-file bounds.
const (
	MaxGeneratedSize  = 16 << 10
	MaxGeneratedFiles = 16
)

// Generated kinds.
const (
	KindLog    = "log"    // a device event log, newest last
	KindBinary = "binary" // an opaque image (a backup, a firmware blob)
)

// logEvents are the messages a controller's communication processor writes to its log.
var logEvents = []string{
	"CPU: operating mode RUN",
	"CPU: operating mode STOP (requested by programming device)",
	"CPU: operating mode transition STOP -> STARTUP -> RUN",
	"CP: connection established to partner %d.%d.%d.%d",
	"CP: connection aborted by partner %d.%d.%d.%d",
	"CP: NTP time synchronisation successful",
	"CP: NTP server not reachable",
	"HTTP: user login successful",
	"HTTP: user login failed",
	"FTP: file transfer completed",
	"Diagnostic buffer: module inserted in rack 0 slot %d",
	"Power supply: battery low",
	"Memory card: checksum verified",
}

// Generate returns the per-host content of a generated file: deterministic for (seed,
// name), different between hosts, at most MaxGeneratedSize bytes, timestamps before now.
func Generate(kind string, seed uint64, name string, size int, now time.Time) []byte {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(seed, h.Sum64()))
	size = min(max(size, 1), MaxGeneratedSize)
	switch kind {
	case KindBinary:
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	default:
		var lines [][]byte
		total := 0
		t := now.Add(-time.Duration(r.IntN(30*24)) * time.Hour).UTC()
		for total < size {
			msg := logEvents[r.IntN(len(logEvents))]
			var line string
			switch {
			case countVerbs(msg) == 4:
				line = fmt.Sprintf(msg, 10, r.IntN(255), r.IntN(255), 1+r.IntN(253))
			case countVerbs(msg) == 1:
				line = fmt.Sprintf(msg, 1+r.IntN(8))
			default:
				line = msg
			}
			l := []byte(t.Format("2006-01-02 15:04:05") + " " + line + "\n")
			if total+len(l) > size {
				break
			}
			lines = append(lines, l)
			total += len(l)
			t = t.Add(time.Duration(1+r.IntN(3600)) * time.Second)
			if t.After(now) {
				break
			}
		}
		var b []byte
		for _, l := range lines {
			b = append(b, l...)
		}
		return b
	}
}

func countVerbs(s string) int {
	n := 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 'd' {
			n++
		}
	}
	return n
}

// Generated is a per-host file a profile asks for: <generated path="LOG/events.log"
// kind="log|binary" size="4096"/>, its content made from the host's seed.
type Generated struct {
	Path, Kind string // Path is relative to the protocol's root
	Size       int
}

// ParseGenerated reads one <generated> element.
func ParseGenerated(e *profiles.Node) (Generated, error) {
	p, _ := e.Attr("path")
	rel, err := Join("/", p)
	if err != nil || rel == "/" {
		return Generated{}, e.Errorf("path %q is not a file path inside the root", p)
	}
	g := Generated{Path: rel, Kind: KindLog, Size: 4096}
	if k, ok := e.Attr("kind"); ok {
		if k != KindLog && k != KindBinary {
			return Generated{}, e.Errorf("kind %q is neither %s nor %s", k, KindLog, KindBinary)
		}
		g.Kind = k
	}
	if v, ok := e.Attr("size"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxGeneratedSize {
			return Generated{}, e.Errorf("size %q is not between 1 and %d", v, MaxGeneratedSize)
		}
		g.Size = n
	}
	return g, nil
}
