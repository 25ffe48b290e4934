package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const headerRequestID = "X-Request-Id"

// requestID takes nginx's X-Request-Id (or makes one), echoes it in the
// response with the instance's name (X-Bot-Instance) and puts it in the
// context for every log line.
func (s *Server) requestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(headerRequestID)
			if !validID(id, maxID) {
				id = newID()
			}
			c.Response().Header().Set(headerRequestID, id)
			c.Response().Header().Set("X-Bot-Instance", s.deps.Instance)
			r := c.Request()
			c.SetRequest(r.WithContext(telemetry.WithRequestID(r.Context(), id)))
			return next(c)
		}
	}
}

// observe counts every request in the metrics and logs those Deps.AccessLog
// asks for.
func (s *Server) observe() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				s.handleError(err, c)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			elapsed := time.Since(start)
			method, code := methodLabel(c.Request().Method), strconv.Itoa(status)
			s.metrics.requests.WithLabelValues(route, method, code).Inc()
			s.metrics.duration.WithLabelValues(route, method, code).Observe(elapsed.Seconds())
			if route != "/health" && route != "/ready" && route != "/metrics" && s.deps.AccessLog.logs(status, elapsed) {
				s.deps.Logger.InfoContext(c.Request().Context(), "http",
					"method", c.Request().Method, "path", c.Request().URL.Path, "status", status,
					"ms", float64(elapsed.Microseconds())/1000, "remote", c.RealIP())
			}
			return nil
		}
	}
}

// methodLabel is a request's method as a metric label: a client's made-up
// method is "other", so that it cannot grow the series without bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// trace starts a server span per request, continuing the caller's W3C
// trace context.
func (s *Server) trace() echo.MiddlewareFunc {
	tracer := otel.Tracer("github.com/botfleet/botfleet/pkg/httpapi")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, r.Method+" "+c.Path(), trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("http.request.method", r.Method),
					attribute.String("http.route", c.Path()),
					attribute.String("botfleet.request_id", telemetry.RequestID(ctx)),
				))
			defer span.End()
			c.SetRequest(r.WithContext(ctx))
			err := next(c)
			status := c.Response().Status
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return err
		}
	}
}

// recover turns a panic into a 500 and a log line instead of a dead instance.
func (s *Server) recover() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return next(c)
		}
	}
}

// bearer returns the credential of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 9110 §11.1).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// idempotencyKey is the turn's request id: the client's Idempotency-Key,
// else the request id in the context (nginx's X-Request-Id, or one made
// for the request).
func idempotencyKey(c echo.Context) (string, error) {
	if id := c.Request().Header.Get("Idempotency-Key"); id != "" {
		if !validID(id, maxID) {
			return "", newError(http.StatusBadRequest, "invalid_request", "Idempotency-Key: 1 to 128 visible ASCII characters")
		}
		return id, nil
	}
	return telemetry.RequestID(c.Request().Context()), nil
}

// maxID bounds request, user and group ids.
const maxID = 128

// validID accepts ids of 1..max visible ASCII characters.
func validID(id string, max int) bool {
	if id == "" || len(id) > max {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
