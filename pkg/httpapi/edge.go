package httpapi

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// What a refused body is still read for, so that a client that sends the
// whole body before reading the answer gets its 413 instead of a
// connection reset (as nginx's lingering close).
const (
	lingerBytes = 8 << 20
	lingerTime  = 5 * time.Second
)

// smallBodyBytes bounds the body of the token route.
const smallBodyBytes = 16 << 10

// ipExtractor takes the client address from X-Forwarded-For (the nearest
// address not of a trusted proxy) or X-Real-IP, but only when the peer is
// a trusted proxy; otherwise the peer's own address.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	xff, real := echo.ExtractIPFromXFFHeader(opts...), echo.ExtractIPFromRealIPHeader(opts...)
	return func(r *http.Request) string {
		if len(r.Header[echo.HeaderXForwardedFor]) > 0 {
			return xff(r)
		}
		return real(r)
	}
}

// limitedBody is http.MaxBytesReader that remembers it was hit.
type limitedBody struct {
	rc          io.ReadCloser
	left, limit int64
	hit         bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.hit {
		return 0, &http.MaxBytesError{Limit: b.limit}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) <= b.left {
		b.left -= int64(n)
		return n, err
	}
	b.hit = true
	n = int(b.left)
	b.left = 0
	return n, &http.MaxBytesError{Limit: b.limit}
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// bodyLimit bounds a route's request bodies to limit bytes (0:
// MaxBodyBytes). A larger body gets its 413 JSON answer, then up to
// lingerBytes of it are read and discarded before the connection closes.
func (s *Server) bodyLimit(limit int64) echo.MiddlewareFunc {
	if limit <= 0 {
		limit = s.deps.MaxBodyBytes
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			c.Set(ctxBodyLimit, limit)
			if r.ContentLength > limit {
				return s.refuseBody(c, r.Body, limit)
			}
			lb := &limitedBody{rc: r.Body, left: limit, limit: limit}
			r.Body = lb
			err := next(c)
			if lb.hit && !c.Response().Committed {
				return s.refuseBody(c, lb.rc, limit)
			}
			return err
		}
	}
}

const ctxBodyLimit = "botfleet.body_limit"

// bodyLimitOf is the body limit of the request's route.
func (s *Server) bodyLimitOf(c echo.Context) int64 {
	if n, ok := c.Get(ctxBodyLimit).(int64); ok {
		return n
	}
	return s.deps.MaxBodyBytes
}

func (s *Server) refuseBody(c echo.Context, body io.Reader, limit int64) error {
	rc := http.NewResponseController(c.Response())
	// Reading on after the answer is written needs full duplex in HTTP/1.
	_ = rc.EnableFullDuplex()
	c.Response().Header().Set("Connection", "close")
	s.handleError(tooLarge(limit), c)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, body, lingerBytes)
	return nil
}

// headerLimit refuses requests with more than max header fields, with a
// 431 JSON answer; http.Server's MaxHeaderBytes bounds their size.
func (s *Server) headerLimit(next http.Handler) http.Handler {
	max := s.deps.MaxHeaderCount
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		for _, v := range r.Header {
			n += len(v)
		}
		if max > 0 && n > max {
			s.deps.Logger.InfoContext(r.Context(), "request refused", "status", http.StatusRequestHeaderFieldsTooLarge,
				"code", "too_many_headers", "fields", n, "remote", r.RemoteAddr)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
			_, _ = io.WriteString(w, `{"error":{"code":"too_many_headers","message":"more than `+strconv.Itoa(max)+` header fields"}}`+"\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cors lets the configured browser origins call the API; preflights are
// answered before authentication.
func (s *Server) cors() echo.MiddlewareFunc {
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins: s.deps.CORSOrigins,
		AllowMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodOptions},
		AllowHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "X-Session-Id", "Last-Event-ID"},
		ExposeHeaders: []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-Request-Id",
			"Idempotent-Replayed", "X-Bot-Backend", "x-should-retry"},
		MaxAge: int(s.deps.CORSMaxAge.Seconds()),
	})
}

// screen runs the content filter on a message from source: a blocked
// message is a 400, a flagged one a log line.
func (s *Server) screen(c echo.Context, source, message string) error {
	v := s.deps.Filter.Check(source, message)
	switch {
	case v.Blocked:
		return newError(http.StatusBadRequest, "content_blocked", "the message contains a blocked word")
	case v.Word != "":
		s.deps.Logger.InfoContext(c.Request().Context(), "content flagged", "word", v.Word, "source", source)
	}
	return nil
}
