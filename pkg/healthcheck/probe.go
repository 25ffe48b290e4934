package healthcheck

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Prober probes one URL.
type Prober interface {
	// Probe returns nil when url is healthy, or why it is not. It returns
	// within timeout.
	Probe(ctx context.Context, url string, timeout time.Duration) error
}

// HTTPProber probes with an HTTP GET: a 2xx or 3xx answer within the
// timeout is success (redirects are not followed). The zero value is ready
// to use.
type HTTPProber struct {
	// Client sends the requests; nil means a client without keep-alive
	// connections, so a probe never reuses a connection to a process that
	// has since been replaced.
	Client *http.Client
}

var defaultProbeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// Probe implements Prober.
func (p HTTPProber) Probe(ctx context.Context, url string, timeout time.Duration) error {
	client := p.Client
	if client == nil {
		client = defaultProbeClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	req.Header.Set("User-Agent", "botfleet-healthchecker")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("probe: HTTP %d", resp.StatusCode)
	}
	return nil
}
