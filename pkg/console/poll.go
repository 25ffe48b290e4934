package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
)

// PollOptions describe a console left open in a browser, for measuring
// what it costs the fleet (make bench: the same load with and without it).
type PollOptions struct {
	// URL is the fleet's base URL (nginx, or an instance). Required.
	URL string
	// AdminKey logs the console in. Required.
	AdminKey string
	// Interval is the time between polls; 0 takes the registry's heartbeat
	// interval from the first answer, as the page does.
	Interval time.Duration
	// Client sends the requests. Default: a client with a cookie jar and
	// a 10s timeout.
	Client *http.Client
}

// PollStats count what a poller did.
type PollStats struct {
	Polls, Failures int
	Bytes           int64
}

// Poll does what an open console's Fleet view does until ctx ends: log in
// (the session cookie), load the page and its script once, then GET
// /admin/api/fleet at the heartbeat interval. It returns when ctx ends, or
// at once when the login fails.
func Poll(ctx context.Context, o PollOptions) (PollStats, error) {
	var st PollStats
	c := o.Client
	if c == nil {
		jar, _ := cookiejar.New(nil)
		c = &http.Client{Jar: jar, Timeout: 10 * time.Second}
	}
	base := strings.TrimRight(o.URL, "/")
	get := func(path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		st.Bytes += int64(len(b))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return b, err
	}
	body, _ := json.Marshal(map[string]string{"key": o.AdminKey})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/admin/api/login", strings.NewReader(string(body)))
	if err != nil {
		return st, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		return st, fmt.Errorf("console: login: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("console: login: %s (is --console-key the fleet's auth.admin_key?)", resp.Status)
	}
	for _, p := range []string{"/admin/", "/admin/console.js", "/admin/console.css"} {
		if _, err := get(p); err != nil {
			return st, fmt.Errorf("console: %w", err)
		}
	}
	interval := o.Interval
	for {
		b, err := get("/admin/api/fleet")
		st.Polls++
		switch {
		case ctx.Err() != nil:
			return st, nil
		case err != nil:
			st.Failures++
		case interval == 0:
			var f struct {
				Interval float64 `json:"interval_seconds"`
			}
			if json.Unmarshal(b, &f) == nil && f.Interval > 0 {
				interval = time.Duration(f.Interval * float64(time.Second))
			}
		}
		wait := interval
		if wait == 0 {
			wait = 2 * time.Second
		}
		if !pause.For(ctx, wait) {
			return st, nil
		}
	}
}
