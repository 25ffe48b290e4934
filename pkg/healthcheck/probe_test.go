package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHTTPProberSuccessIs2xxOr3xx(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/moved":
			http.Redirect(w, r, "/nowhere", http.StatusFound)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	defer close(release)
	cases := map[string]bool{"/ok": true, "/moved": true, "/down": false, "/slow": false}
	for path, want := range cases {
		start := time.Now()
		err := HTTPProber{}.Probe(context.Background(), srv.URL+path, 200*time.Millisecond)
		if (err == nil) != want {
			t.Errorf("%s: err %v, want success %v", path, err, want)
		}
		t.Logf("%s: %v in %s", path, err, time.Since(start).Round(time.Millisecond))
	}
	if err := (HTTPProber{}).Probe(context.Background(), "http://127.0.0.1:1/health", time.Second); err == nil {
		t.Error("refused connection probed healthy")
	}
}
