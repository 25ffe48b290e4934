package bench

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// loopbackServer is an HTTP server of the harness's own (a platform's
// fake) on a free loopback port.
type loopbackServer struct {
	srv *http.Server
	url string
}

// serveLoopback serves h on a free loopback port until stop.
func serveLoopback(h http.Handler) (*loopbackServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &loopbackServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, url: "http://" + l.Addr().String()}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err) // a listener that was just opened does not fail
		}
	}()
	return s, nil
}

func (s *loopbackServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
