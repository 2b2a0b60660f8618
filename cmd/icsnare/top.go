package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/icsnare/icsnare/sensor"
)

// topMinutes is how many minutes of counts a running sensor keeps for `icsnare top`.
const topMinutes = 15

func topCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		addr           string
		minutes, n     int
		once           bool
		interval       time.Duration
		defaultMetrics = sensor.DefaultConfig().Metrics.Listen
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "a live view of the busiest emulated hosts, sources and protocols of a running sensor",
		Long: `Shows the busiest emulated hosts, sources and protocols of the last minutes, by events and
sessions, from the running sensor's /debug/top (its metrics listener, loopback clients only).
Counts are kept per minute for ` + strconv.Itoa(topMinutes) + ` minutes, at most 4096 hosts and 4096 sources a
minute; they are lower bounds when a flood of distinct addresses overflows that.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if minutes < 1 || minutes > topMinutes {
				return usageError(fmt.Sprintf("icsnare top: --minutes %d: want 1 to %d", minutes, topMinutes))
			}
			if n < 1 || n > 1000 {
				return usageError(fmt.Sprintf("icsnare top: --top %d: want 1 to 1000", n))
			}
			if interval < 100*time.Millisecond {
				return usageError("icsnare top: --interval: want at least 100ms")
			}
			u := url.URL{Scheme: "http", Host: addr, Path: "/debug/top",
				RawQuery: url.Values{"minutes": {strconv.Itoa(minutes)}, "n": {strconv.Itoa(n)}}.Encode()}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				rep, err := fetchTop(ctx, client, u.String())
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					fmt.Fprintf(stderr, "icsnare top: %v (is the sensor running with --metrics %s?)\n", err, addr)
					return exitCode(exitRuntime)
				}
				if !once {
					fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home and clear, as top(1) redraws
				}
				writeTop(stdout, rep)
				if once {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().StringVarP(&addr, "metrics", "m", defaultMetrics, "the running sensor's metrics listener `addr`")
	cmd.Flags().IntVar(&minutes, "minutes", 5, "count the last `N` minutes (1 to "+strconv.Itoa(topMinutes)+")")
	cmd.Flags().IntVarP(&n, "top", "n", 10, "show the `N` busiest of each")
	cmd.Flags().BoolVar(&once, "once", false, "print once and exit (for scripts) instead of redrawing")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "redraw every `duration`")
	return cmd
}

func fetchTop(ctx context.Context, client *http.Client, u string) (sensor.TopReport, error) {
	var rep sensor.TopReport
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return rep, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return rep, err
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("%s: %s: %s", u, resp.Status, body)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("%s: %w", u, err)
	}
	return rep, nil
}

// writeTop prints a report as three tables.
func writeTop(w io.Writer, rep sensor.TopReport) {
	fmt.Fprintf(w, "icsnare top: %s to %s UTC\n", rep.Since.Format("15:04"), rep.Until.Format("15:04:05"))
	for _, sec := range []struct {
		title string
		rows  []sensor.TopCount
	}{{"HOST", rep.Hosts}, {"SOURCE", rep.Sources}, {"PROTOCOL", rep.Protocols}} {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tEVENTS\tSESSIONS\n", sec.title)
		for _, r := range sec.rows {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", r.Key, r.Events, r.Sessions)
		}
		if len(sec.rows) == 0 {
			fmt.Fprintf(tw, "(none)\n")
		}
		tw.Flush()
	}
}
