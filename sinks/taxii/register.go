// Package taxii is the [sinks.taxii] event sink: a TAXII 2.1 client that posts the STIX
// 2.1 bundles of [sinks.stix] (or, without that table, bundles made with its defaults) to
// a collection of a TAXII server, with retries and back-off, through a bounded queue.
package taxii

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/sinks/stix"
)

// Name is the sink kind's name: the [sinks.taxii] table.
const Name = "taxii"

func init() { events.Register(kind{}) }

type kind struct{}

func (kind) Name() string    { return Name }
func (kind) NewOptions() any { o := DefaultOptions(); return &o }
func (kind) Open(ctx context.Context, opts any, env events.Env) (events.Sink, error) {
	o, ok := opts.(*Options)
	if !ok {
		return nil, fmt.Errorf("taxii: options of type %T", opts)
	}
	return Open(ctx, *o, env)
}

// Duration is a time.Duration written as a string in the configuration ("10s").
type Duration = stix.Duration

// Options is the [sinks.taxii] table: where bundles go and how.
type Options struct {
	// URL is the API root ("https://taxii.example/api1/"), or with Discovery the
	// server's discovery URL ("https://taxii.example/taxii2/"), whose default API root
	// (else its first) is taken.
	URL       string `toml:"url"`
	Discovery bool   `toml:"discovery"`
	// Collection is the id of the collection the objects are added to.
	Collection string `toml:"collection"`
	// Username and Password authenticate with HTTP basic authentication; Token with a
	// bearer token instead.
	Username string `toml:"username"`
	Password string `toml:"password"`
	Token    string `toml:"token"`
	// CAFile verifies the server with these PEM certificates instead of the system's;
	// CertFile and KeyFile authenticate the client with a certificate.
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// Timeout bounds one HTTP request.
	Timeout Duration `toml:"timeout"`
	// Retries is how often a post refused with 429 or 5xx, or lost to a network error,
	// is tried again; Backoff the first wait (doubling, with jitter, up to MaxBackoff).
	// A Retry-After the server sends is honoured up to MaxBackoff.
	Retries    int      `toml:"retries"`
	Backoff    Duration `toml:"backoff"`
	MaxBackoff Duration `toml:"max_backoff"`
	// Queue bounds the bundles waiting to be posted; a bundle that finds it full is
	// dropped and counted.
	Queue int `toml:"queue"`
	// StatusWait is how long the status resource of a post is followed until the server
	// has added every object; 0 does not follow it.
	StatusWait Duration `toml:"status_wait"`
	// CloseTimeout bounds how long stopping the sensor waits for queued bundles to go;
	// keep it within the sensor's shutdown budget for its sinks.
	CloseTimeout Duration `toml:"close_timeout"`
	// MaxContentLength bounds the body of one post when the API root does not say
	// (its max_content_length wins when smaller); larger bundles go in several posts.
	MaxContentLength int64 `toml:"max_content_length"`
}

// DefaultOptions returns the defaults of [sinks.taxii].
func DefaultOptions() Options {
	return Options{Timeout: Duration{Duration: 10 * time.Second}, Retries: 5,
		Backoff: Duration{Duration: time.Second}, MaxBackoff: Duration{Duration: time.Minute}, Queue: 64,
		StatusWait: Duration{Duration: 30 * time.Second}, CloseTimeout: Duration{Duration: time.Second},
		MaxContentLength: 10 << 20}
}

// Validate checks the options; errors name the key.
func (o *Options) Validate() error {
	var errs []error
	u, err := url.Parse(o.URL)
	switch {
	case o.URL == "":
		errs = append(errs, errors.New("url is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		errs = append(errs, fmt.Errorf("url %q is not an http(s) URL", o.URL))
	}
	if o.Collection == "" {
		errs = append(errs, errors.New("collection is required"))
	}
	if o.Token != "" && (o.Username != "" || o.Password != "") {
		errs = append(errs, errors.New("token and username/password exclude each other"))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file go together"))
	}
	for key, f := range map[string]string{"ca_file": o.CAFile, "cert_file": o.CertFile, "key_file": o.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	pos := func(key string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, not %d", key, v))
		}
	}
	pos("timeout", int64(o.Timeout.Duration))
	pos("backoff", int64(o.Backoff.Duration))
	pos("max_backoff", int64(o.MaxBackoff.Duration))
	pos("queue", int64(o.Queue))
	pos("close_timeout", int64(o.CloseTimeout.Duration))
	pos("max_content_length", o.MaxContentLength)
	if o.Retries < 0 {
		errs = append(errs, fmt.Errorf("retries must not be negative, not %d", o.Retries))
	}
	if o.StatusWait.Duration < 0 {
		errs = append(errs, errors.New("status_wait must not be negative"))
	}
	if o.MaxBackoff.Duration < o.Backoff.Duration {
		errs = append(errs, errors.New("max_backoff is less than backoff"))
	}
	return errors.Join(errs...)
}
