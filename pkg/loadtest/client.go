package loadtest

import (
	"net"
	"net/http"
	"time"
)

// NewClient returns the HTTP client a run uses by default: one shared
// transport keeping up to concurrency idle keep-alive connections to the
// host (at least 100), HTTP/1.1 (no HTTP/2 requirement), no compression, no
// proxy (a load test measures the service, not $HTTP_PROXY) and no client-wide
// timeout (each request carries its own).
func NewClient(concurrency int) *http.Client {
	conns := max(concurrency, 100)
	return &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}}
}
