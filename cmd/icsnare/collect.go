package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/icsnare/icsnare/collect"
)

const collectUsage = `usage: icsnare collect --nats URL --stream S --out DIR [flags]

The central side of a fleet: reads the events that sensors' [sinks.nats] publish to a
JetStream stream, with a durable consumer, and writes them to DIR/<sensor>/<YYYY-MM-DD>.jsonl
(acknowledged once on disk). SIGTERM finishes the batch at hand and exits.

`

// cmdCollect runs `icsnare collect`.
func cmdCollect(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, collectUsage); fs.PrintDefaults() }
	var o collect.Options
	url := fs.String("nats", "", "NATS `URL`s, comma separated (nats:// or tls://)")
	fs.StringVar(&o.Stream, "stream", "ICSNARE", "JetStream `stream` to read")
	fs.StringVar(&o.Out, "out", "", "output `directory`")
	fs.StringVar(&o.Durable, "durable", collect.DefaultDurable, "durable consumer `name` (one per output directory)")
	fs.StringVar(&o.Filter, "filter", "", "only `subjects` matching this filter")
	fs.StringVar(&o.Prefix, "prefix", "icsnare", "the sensors' subject `prefix`")
	fs.IntVar(&o.Batch, "batch", collect.DefaultBatch, "messages per fetch (and per fsync)")
	fs.IntVar(&o.DedupWindow, "dedup-window", collect.DefaultDedupWindow, "recent message ids remembered to drop redeliveries")
	fs.DurationVar(&o.AckWait, "ack-wait", collect.DefaultAckWait, "redelivery after this long without an ack")
	fs.StringVar(&o.Conn.Creds, "creds", "", "credentials `file` (JWT and NKey)")
	fs.StringVar(&o.Conn.NKeySeed, "nkey", "", "NKey seed `file`")
	fs.StringVar(&o.Conn.User, "user", "", "user name (the password comes from $NATS_PASSWORD)")
	fs.StringVar(&o.Conn.TLSCA, "tls-ca", "", "CA `file` that verifies the server")
	fs.StringVar(&o.Conn.TLSCert, "tls-cert", "", "client certificate `file`")
	fs.StringVar(&o.Conn.TLSKey, "tls-key", "", "client key `file`")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "icsnare collect: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *url == "" || o.Out == "" {
		fmt.Fprintln(stderr, "icsnare collect: --nats URL and --out DIR are required")
		return exitUsage
	}
	o.Conn.Servers = strings.Split(*url, ",")
	o.Conn.Password = os.Getenv("NATS_PASSWORD")
	o.Conn.Token = os.Getenv("NATS_TOKEN")
	o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := collect.Run(ctx, o)
	o.Logger.Info("collect: stopped", "written", st.Written, "duplicates", st.Duplicates, "invalid", st.Invalid)
	if err != nil {
		fmt.Fprintf(stderr, "icsnare collect: %v\n", err)
		return 1
	}
	return 0
}
