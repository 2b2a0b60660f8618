package guardianast

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

// pyClient is an independent computer-format client: it sends i20100 (and i20500), checks
// the SOH … && CCCC ETX framing and the checksum as the serial interface manual states it
// (the 16-bit sum of every byte of the message and the checksum's value is zero), decodes
// the ASCII hex IEEE floats and prints the tanks as JSON; then it reads the display-format
// inventory of the same connection.
const pyClient = `
import json, socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
def framed(cmd):
    s.sendall(b"\x01" + cmd)
    buf = b""
    while not buf.endswith(b"\x03"):
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed")
        buf += chunk
    assert buf[0] == 1, "no SOH"
    body, cs = buf[:-5], int(buf[-5:-1], 16)
    assert body.endswith(b"&&"), "no && tag"
    assert (sum(body) + cs) & 0xFFFF == 0, "checksum"
    return body[1:-2].decode("ascii")
inv = framed(b"i20100")
assert inv.startswith("i20100"), inv[:6]
data = inv[6 + 10:]
tanks = []
while data:
    tank, product, status, n = int(data[0:2]), data[2], int(data[3:7], 16), int(data[7:9], 16)
    vals = [struct.unpack(">f", bytes.fromhex(data[9 + 8 * i:17 + 8 * i]))[0] for i in range(n)]
    tanks.append({"tank": tank, "product": product, "status": status, "values": vals})
    data = data[9 + 8 * n:]
st = framed(b"i20500")
s.sendall(b"\x01I20100\r\n")
disp = b""
while not disp.endswith(b"\n\n") or disp.count(b"\n") < 15:
    disp += s.recv(4096)
print(json.dumps({"tanks": tanks, "status": st, "display": disp.decode("ascii")}))
`

// TestPythonComputerFormat: the computer format decodes and checksums in an independent
// client, and its values agree with the display format.
func TestPythonComputerFormat(t *testing.T) {
	py := protocoltest.NeedTool(t, "python3")
	_, srv := serve(t, loadConpot(t), 14)
	out, err := protocoltest.Run(t, 30*time.Second, py, "-c", pyClient, srv.Addr.Addr().String(), strconv.Itoa(int(srv.Addr.Port())))
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var res struct {
		Tanks []struct {
			Tank   int
			Values []float64
		}
		Status, Display string
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Tanks) != 4 || !strings.HasPrefix(res.Status, "i20500") {
		t.Fatalf("%+v", res)
	}
	lines := strings.Split(res.Display, "\n")
	for i, tk := range res.Tanks {
		if tk.Tank != i+1 || len(tk.Values) != 7 {
			t.Fatalf("tank %d: %+v", i+1, tk)
		}
		var row []string
		for _, l := range lines {
			if f := strings.Fields(l); len(f) == 8 && f[0] == strconv.Itoa(i+1) {
				row = f
			}
		}
		if row == nil {
			t.Fatalf("no display row for tank %d", i+1)
		}
		// volume, TC volume, ullage, height, water, temperature: the same within the
		// display's rounding and a second of sales between the two reads
		for j, tol := range []float64{2, 2, 2, 0.05, 0.02, 0.02} {
			d, _ := strconv.ParseFloat(row[2+j], 64)
			if math.Abs(d-tk.Values[j]) > tol {
				t.Errorf("tank %d field %d: display %v, computer %v", i+1, j+1, d, tk.Values[j])
			}
		}
	}
}
