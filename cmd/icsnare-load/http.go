package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// httpLoad sends HTTP/1.1 keep-alive GETs for one path, one outstanding per connection,
// and reads each whole answer; a closed connection is redialled.
type httpLoad struct{ o opts }

func newHTTP(o opts) workload { return &httpLoad{o} }

func (h *httpLoad) run(ctx context.Context, target string, rec *recorder, budget *pacer) error {
	req := []byte("GET " + h.o.path + " HTTP/1.1\r\nHost: " + target + "\r\nUser-Agent: icsnare-load\r\nAccept: */*\r\n\r\n")
	for ctx.Err() == nil {
		again, err := h.conn(ctx, target, req, rec, budget)
		if err != nil || !again {
			return err
		}
	}
	return nil
}

// conn runs requests over one connection; again says the server closed it and the caller
// should dial another.
func (h *httpLoad) conn(ctx context.Context, target string, req []byte, rec *recorder, budget *pacer) (bool, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		return false, fmt.Errorf("http: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		sent := time.Now()
		if _, err := c.Write(req); err != nil {
			return ctx.Err() == nil, nil
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			return false, fmt.Errorf("http: read: %w", err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		var rerr error
		if err != nil {
			rerr = fmt.Errorf("http: body: %w", err)
		} else if resp.StatusCode != h.o.status {
			rerr = fmt.Errorf("http: status %d, want %d", resp.StatusCode, h.o.status)
		}
		rec.record(sent, rerr)
		if rerr != nil {
			return false, rerr
		}
		if ctx.Err() != nil || budget.Add(-1) <= 0 {
			return false, nil
		}
		if resp.Close {
			return true, nil
		}
	}
}
