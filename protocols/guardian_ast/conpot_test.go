package guardianast

import (
	"strings"
	"testing"
	"time"
)

// The exchanges of Conpot's test_guardian_ast.py against its guardian_ast template
// (conpot.md §3.7). Each opens a connection and sends "\x01<cmd>\r\n"; the comparisons skip
// the timestamp (bytes 8-23).

func TestConpotInventory(t *testing.T) {
	_, srv := serve(t, loadConpot(t), 7)
	got := dial(t, srv).ask("\x01I20100\r\n")
	if !strings.HasPrefix(got, "\nI20100\n") {
		t.Fatalf("reply starts %q", got[:min(len(got), 8)])
	}
	if _, err := time.Parse("01/02/2006 15:04", got[8:24]); err != nil {
		t.Errorf("timestamp %q: %v", got[8:24], err)
	}
	want := "\n\nSTATOIL STATION\n\n\n\nIN-TANK INVENTORY\n\n" +
		"TANK PRODUCT             VOLUME TC VOLUME   ULLAGE   HEIGHT    WATER     TEMP\n" +
		"  1  SUPER    "
	if got[24:156] != want {
		t.Fatalf("bytes 24-155:\n got %q\nwant %q", got[24:156], want)
	}
	lines := strings.Split(got, "\n")
	tanks := 0
	for _, l := range lines {
		if len(l) > 5 && l[:2] == "  " && l[2] >= '1' && l[2] <= '4' {
			tanks++
			if len(l) != 77 {
				t.Errorf("tank line %q is %d characters, want 77 (the header's columns)", l, len(l))
			}
		}
	}
	if tanks != 4 {
		t.Fatalf("%d tank lines in\n%s", tanks, got)
	}
	evs := srv.Events.OfType(evCommand)
	if len(evs) != 1 || string(evs[0].Request) != "\x01I20100" || string(evs[0].Response) != got {
		t.Fatalf("events %+v", evs)
	}
	ce := protocol{}.ConpotEvents(evs[0])
	if len(ce) != 1 || ce[0].DataType != "guardian_ast" || ce[0].EventType != "AST I20100" ||
		ce[0].Request != `b'\x01I20100'` || ce[0].Response != got {
		t.Fatalf("Conpot documents %+v", ce)
	}
}

func TestConpotReports(t *testing.T) {
	_, srv := serve(t, loadConpot(t), 8)
	c := dial(t, srv)
	for _, x := range []struct{ cmd, want string }{
		{"I20200", "\n\nSTATOIL STATION\n\n\n\nDELIVERY REPORT\n\nT 1:SUPER                 \n" +
			"INCREASE   DATE / TIME             GALLONS TC GALLONS WATER  TEMP DEG F  HEIGHT\n\n      END: "},
		{"I20300", "\n\nSTATOIL STATION\n\n\n\nTANK 1    SUPER                 \n    TEST STATUS: OFF\n" +
			"LEAK DATA NOT AVAILABLE ON THIS TANK\n\nTANK 2    UNLEAD                \n    TEST STATUS: OFF\n" +
			"LEAK DATA NOT AVAILABLE ON THIS TANK\n\nTANK 3    DIESEL                \n    TEST STATUS: OFF\n" +
			"LEAK DATA NOT AVAILABLE ON THIS TANK\n\nTANK 4    PREMIUM               \n    TEST STATUS: OFF\n" +
			"LEAK DATA NOT AVAILABLE ON THIS TANK\n\n\n"},
		{"I20400", "\n\nSTATOIL STATION\n\n\n\nSHIFT REPORT\n\nSHIFT  1 STARTING VALUES      "},
		{"I20500", "\n\nSTATOIL STATION\n\n\n\nTANK   PRODUCT                 STATUS\n\n  1    SUPER                   "},
	} {
		c.send("\x01" + x.cmd + "\r\n")
		got := string(c.readFor(500 * time.Millisecond))
		if !strings.HasPrefix(got, "\n"+x.cmd+"\n") || len(got) < 24+len(x.want) || got[24:24+len(x.want)] != x.want {
			t.Errorf("%s:\n got %q\nwant …%q", x.cmd, got, x.want)
		}
	}
}

func TestConpotError(t *testing.T) {
	_, srv := serve(t, loadConpot(t), 9)
	c := dial(t, srv)
	c.send("\x01S6020\r\n")
	if got := string(c.readFor(500 * time.Millisecond)); got != "9999FF1B\n" {
		t.Fatalf("S6020: %q", got)
	}
	ce := protocol{}.ConpotEvents(srv.Events.OfType(evCommand)[0])
	if ce[0].EventType != "AST S6020" || ce[0].Response != "9999FF1B\n" {
		t.Fatalf("Conpot document %+v", ce)
	}
}

func TestConpotSetProduct(t *testing.T) {
	_, srv := serve(t, loadConpot(t), 10)
	c := dial(t, srv)
	for i, name := range []string{"NONSUPER", "TESTLEAD", "TESTDIESEL", "TESTPREMIUM"} {
		c.send("\x01S6020" + string(rune('1'+i)) + name + "\r\n")
		if got := c.readFor(500 * time.Millisecond); len(got) != 0 {
			t.Fatalf("set %s answered %q", name, got)
		}
		if got := c.ask("\x01I20100\r\n"); !strings.Contains(got, name) {
			t.Fatalf("inventory after S6020%d%s lacks it:\n%s", i+1, name, got)
		}
	}
	c.send("\x01S60200ULTIMATETEST\r\n")
	c.readFor(500 * time.Millisecond)
	if got := c.ask("\x01I20100\r\n"); strings.Count(got, "ULTIMATETEST") != 4 {
		t.Fatalf("after S60200ULTIMATETEST:\n%s", got)
	}
	// Unlike Conpot, the labels outlive the connection: they are the host's databus values.
	if got := dial(t, srv).ask("\x01I20100\r\n"); strings.Count(got, "ULTIMATETEST") != 4 {
		t.Fatalf("a new connection lost the labels:\n%s", got)
	}
	ce := protocol{}.ConpotEvents(srv.Events.OfType(evCommand)[0])
	if ce[0].EventType != "AST S60201" || ce[0].Response != nil || ce[0].Request != `b'\x01S60201NONSUPER'` {
		t.Fatalf("Conpot document %+v", ce)
	}
}
