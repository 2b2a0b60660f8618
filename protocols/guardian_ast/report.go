package guardianast

import (
	"fmt"
	"strings"
	"time"
)

// Framing selects how display-format replies are wrapped.
type Framing int

// Framings.
const (
	// FramingConpot is Conpot's (and GasPot's) display layout: LF line ends, no SOH/ETX,
	// dates as MM/DD/YYYY HH:MM, no reply to a set command, the error as "9999FF1B\n".
	FramingConpot Framing = iota
	// FramingTLS is the TLS-350's: SOH, CR LF line ends, ETX; dates as "NOV 29, 2026 9:05 AM";
	// set commands echoed; the error as SOH 9999FF1B ETX.
	FramingTLS
)

// Snapshot is everything a report shows, gathered at one time. Rendering is pure.
type Snapshot struct {
	Now      time.Time
	Station  string
	Readings []Reading    // the tanks asked for, in order
	Delivery [][]Delivery // per reading, newest first
	Alarms   [][]Alarm    // per reading, active
	History  []Alarm      // alarm history (I111, I206), newest first
	// ShiftStart and Shift are the current shift's start and the readings then (I204).
	ShiftStart time.Time
	Shift      []Reading
	// Software and Created are the console's software version ("346330-133-B") and
	// its build time (I902).
	Software string
	Created  time.Time
}

// Delivery is one completed delivery as reported.
type Delivery struct {
	Start, End                time.Time
	StartVol, StartTC, EndVol float64
	EndTC                     float64
	StartWater, EndWater      float64
	StartTemp, EndTemp        float64
	StartHeight, EndHeight    float64
}

func (f Framing) date(t time.Time) string {
	if f == FramingTLS {
		return strings.ToUpper(t.Format("Jan 2, 2006 3:04 PM"))
	}
	return t.Format("01/02/2006 15:04")
}

// Display renders the display-format reply to an inquiry c (already validated).
func Display(f Framing, c Command, s *Snapshot) []byte {
	var b strings.Builder
	if c.Kind == KindRevision { // the revision report has no date or station header
		fmt.Fprintf(&b, "\n%s\nSOFTWARE# %s\nCREATED - %s\n\n", c.Code, s.Software, s.Created.Format("06.01.02.15.04"))
		return f.frame(b.String())
	}
	head := func(title string) {
		fmt.Fprintf(&b, "\n%s\n%s\n\n%s", c.Code, f.date(s.Now), stationHeader(s.Station))
		if f == FramingTLS {
			b.WriteString("\n") // the console leaves a blank line after its header
		}
		if title != "" {
			b.WriteString(title + "\n\n")
		}
	}
	invHeader := "TANK PRODUCT             VOLUME TC VOLUME   ULLAGE   HEIGHT    WATER     TEMP\n"
	invLine := func(r Reading) {
		fmt.Fprintf(&b, "%3d  %-20s%6.0f%10.0f%9.0f%9.2f%9.2f%9.2f\n",
			r.Tank, label(r.Product, 20), r.Vol, r.TCVol, r.Ullage, r.Height, r.Water, r.Temp)
	}
	switch c.Kind {
	case KindInventory:
		head("IN-TANK INVENTORY")
		b.WriteString(invHeader)
		for _, r := range s.Readings {
			invLine(r)
		}
	case KindDelivery:
		head("DELIVERY REPORT")
		for i, r := range s.Readings {
			fmt.Fprintf(&b, "T %d:%-22s\n", r.Tank, label(r.Product, 22))
			b.WriteString("INCREASE   DATE / TIME             GALLONS TC GALLONS WATER  TEMP DEG F  HEIGHT\n\n")
			for _, d := range s.Delivery[i] {
				row := func(name string, t time.Time, vol, tc, water, temp, height float64) {
					// the gallons column ends under GALLONS (column 42) whatever the date's width
					date := f.date(t)
					fmt.Fprintf(&b, "%11s%s%*.0f%11.0f%6.2f%12.2f%8.2f\n", name+": ", date, max(31-len(date), 7), vol, tc, water, temp, height)
				}
				row("END", d.End, d.EndVol, d.EndTC, d.EndWater, d.EndTemp, d.EndHeight)
				row("START", d.Start, d.StartVol, d.StartTC, d.StartWater, d.StartTemp, d.StartHeight)
				fmt.Fprintf(&b, "%11s%-16s%15.0f%11.0f\n\n", "AMOUNT: ", "", d.EndVol-d.StartVol, d.EndTC-d.StartTC)
			}
			b.WriteString("\n")
		}
	case KindLeak:
		head("")
		for _, r := range s.Readings {
			fmt.Fprintf(&b, "TANK %d    %-22s\n    TEST STATUS: OFF\nLEAK DATA NOT AVAILABLE ON THIS TANK\n\n", r.Tank, label(r.Product, 22))
		}
	case KindShift:
		head("SHIFT REPORT")
		fmt.Fprintf(&b, "SHIFT  1 STARTING VALUES      %s\n", f.date(s.ShiftStart))
		b.WriteString(invHeader)
		for _, r := range s.Shift {
			invLine(r)
		}
		fmt.Fprintf(&b, "\nSHIFT  1 CURRENT VALUES       %s\n", f.date(s.Now))
		b.WriteString(invHeader)
		for _, r := range s.Readings {
			invLine(r)
		}
	case KindStatus:
		head("")
		b.WriteString("TANK   PRODUCT                 STATUS\n\n")
		for i, r := range s.Readings {
			fmt.Fprintf(&b, "%3d    %-24s", r.Tank, label(r.Product, 22))
			if len(s.Alarms[i]) == 0 {
				b.WriteString("NORMAL\n")
			}
			for j, a := range s.Alarms[i] {
				if j > 0 {
					b.WriteString(strings.Repeat(" ", 31))
				}
				b.WriteString(a.Text + "\n")
			}
			b.WriteString("\n")
		}
	case KindSystemStatus:
		head("SYSTEM STATUS REPORT")
		n := 0
		for i, r := range s.Readings {
			for _, a := range s.Alarms[i] {
				fmt.Fprintf(&b, "T %d:%s\n", r.Tank, a.Text)
				n++
			}
		}
		if n == 0 {
			b.WriteString("ALL FUNCTIONS NORMAL\n")
		}
	case KindAlarmHistory, KindTankAlarms:
		title := "TANK ALARM HISTORY"
		if c.Kind == KindAlarmHistory {
			title = "PRIORITY ALARM HISTORY"
		}
		head(title)
		b.WriteString("ID   DESCRIPTION          ALARM TYPE           DATE  TIME\n")
		for _, a := range s.History {
			prod := ""
			for _, r := range s.Readings {
				if r.Tank == a.Tank {
					prod = r.Product
				}
			}
			fmt.Fprintf(&b, "T%2d  %-20s %-20s %s\n", a.Tank, label(prod, 20), a.Text, a.Since.Format("01-02-06 15:04"))
		}
		if len(s.History) == 0 {
			b.WriteString("NO ALARMS\n")
		}
	}
	b.WriteString("\n")
	return f.frame(b.String())
}

// stationHeader renders the four station header lines of a report: the station name's
// lines (station_name may hold up to four, separated by newlines), each cut to 20
// characters, then blank lines. A one-line name gives Conpot's layout: the name and three
// blank lines.
func stationHeader(name string) string {
	lines := strings.SplitN(name, "\n", 4)
	for i, l := range lines {
		lines[i] = label(strings.TrimRight(l, "\r"), 20)
	}
	for len(lines) < 4 {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n") + "\n"
}

// frame wraps a display body (LF line ends) as the framing requires.
func (f Framing) frame(body string) []byte {
	if f != FramingTLS {
		return []byte(body)
	}
	out := make([]byte, 0, len(body)+len(body)/20+2)
	out = append(out, SOH)
	for i := 0; i < len(body); i++ {
		if body[i] == '\n' {
			out = append(out, '\r')
		}
		out = append(out, body[i])
	}
	return append(out, ETX)
}

// Error renders the error reply.
func Error(f Framing, computer bool) []byte {
	if f == FramingTLS || computer {
		return []byte("\x01" + ErrorReply + "\x03")
	}
	return []byte(ErrorReply + "\n")
}

// SetReply renders the reply to a set command: none in Conpot's framing for the display
// format, else the command echoed.
func SetReply(f Framing, c Command) []byte {
	if c.Computer {
		return FrameComputer(c.Code, nil)
	}
	if f != FramingTLS {
		return nil
	}
	return f.frame("\n" + c.Code + "\n\n")
}

// HasComputer reports whether the computer format of kind is rendered (else the error
// reply answers it).
func HasComputer(kind string) bool {
	return kind == KindInventory || kind == KindDelivery || kind == KindStatus || kind == KindRevision
}

// Computer renders the computer-format reply to an inquiry c whose kind HasComputer.
func Computer(c Command, s *Snapshot) []byte {
	ts := func(b []byte, t time.Time) []byte { return t.AppendFormat(b, "0601021504") }
	data := ts(nil, s.Now)
	switch c.Kind {
	case KindInventory:
		for _, r := range s.Readings {
			status := 0
			if r.Delivering {
				status |= 1
			}
			data = fmt.Appendf(data, "%02d%c%04X07", r.Tank, productCode(r.Tank), status)
			for _, v := range []float64{r.Vol, r.TCVol, r.Ullage, r.Height, r.Water, r.Temp, r.WaterVol} {
				data = AppendFloat(data, v)
			}
		}
	case KindDelivery:
		for i, r := range s.Readings {
			data = fmt.Appendf(data, "%02d%c%02X", r.Tank, productCode(r.Tank), len(s.Delivery[i]))
			for _, d := range s.Delivery[i] {
				data = ts(data, d.Start)
				data = ts(data, d.End)
				data = append(data, "0A"...)
				for _, v := range []float64{d.StartVol, d.StartTC, d.StartWater, d.StartTemp, d.EndVol, d.EndTC, d.EndWater, d.EndTemp, d.StartHeight, d.EndHeight} {
					data = AppendFloat(data, v)
				}
			}
		}
	case KindRevision:
		data = fmt.Appendf(data, "SOFTWARE# %sCREATED - %s", s.Software, s.Created.Format("06.01.02.15.04"))
	case KindStatus:
		for i, r := range s.Readings {
			data = fmt.Appendf(data, "%02d%02X", r.Tank, len(s.Alarms[i]))
			for _, a := range s.Alarms[i] {
				data = fmt.Appendf(data, "%02d", a.Type)
			}
		}
	}
	return FrameComputer(c.Code, data)
}

// productCode is the one-character product code of tank n.
func productCode(n int) byte { return byte('0' + n%10) }

// label pads or cuts s to n characters of printable ASCII.
func label(s string, n int) string {
	s = printable([]byte(s))
	if len(s) > n {
		return s[:n]
	}
	return s
}
