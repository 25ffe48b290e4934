package httpapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/labstack/echo/v4"
)

// apiError is an error answered as {"error": {"code", "message"}}.
type apiError struct {
	Status     int           `json:"-"`
	Code       string        `json:"code"`
	Message    string        `json:"message"`
	RetryAfter time.Duration `json:"-"`
	cause      error
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }
func (e *apiError) Unwrap() error { return e.cause }

func newError(status int, code, message string) *apiError {
	return &apiError{Status: status, Code: code, Message: message}
}

// classify maps an error from below to its HTTP answer.
func classify(err error) *apiError {
	var ae *apiError
	var he *echo.HTTPError
	var ue *llm.UnavailableError
	var ie *im.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ie):
		return &apiError{Status: ie.Status, Code: ie.Code, Message: ie.Message, cause: err}
	case errors.Is(err, queue.ErrUnavailable):
		return &apiError{Status: 503, Code: "store_unavailable", Message: "the job queue (Redis) is unavailable", RetryAfter: time.Second, cause: err}
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		return &apiError{Status: he.Code, Code: codeOf(he.Code), Message: msg, cause: err}
	case errors.Is(err, chat.ErrInvalid):
		return &apiError{Status: 400, Code: "invalid_request", Message: err.Error(), cause: err}
	case errors.Is(err, memory.ErrConflict):
		return &apiError{Status: 409, Code: "idempotency_conflict", Message: "this request id was already used with a different message", cause: err}
	case errors.Is(err, memory.ErrInProgress):
		return &apiError{Status: 409, Code: "request_in_progress", Message: "this request id is still being processed; retry later", cause: err}
	case errors.As(err, &ue):
		return &apiError{Status: 503, Code: "backend_unavailable", Message: "the language model backend is unavailable", RetryAfter: ue.RetryAfter, cause: err}
	case errors.Is(err, llm.ErrRejected):
		return &apiError{Status: 502, Code: "backend_error", Message: "the language model backend rejected the request", cause: err}
	case errors.Is(err, memory.ErrUnavailable):
		return &apiError{Status: 503, Code: "store_unavailable", Message: "conversation memory (Redis) is unavailable", RetryAfter: time.Second, cause: err}
	case errors.Is(err, memory.ErrBusy), errors.Is(err, memory.ErrLeaseLost):
		return &apiError{Status: 503, Code: "conversation_busy", Message: "the conversation is busy; retry", RetryAfter: time.Second, cause: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &apiError{Status: 503, Code: "timeout", Message: "the request did not finish in time", RetryAfter: time.Second, cause: err}
	}
	return &apiError{Status: 500, Code: "internal", Message: "internal error", cause: err}
}

func codeOf(status int) string {
	switch status {
	case 400:
		return "invalid_request"
	case 401:
		return "unauthorized"
	case 404:
		return "not_found"
	case 405:
		return "method_not_allowed"
	case 413:
		return "too_large"
	case 415:
		return "unsupported_media_type"
	}
	return "error"
}

// handleError answers every error of every route in one JSON shape, with
// Retry-After on 429 and 503, and logs it.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := classify(err)
	ctx := c.Request().Context()
	if ae.Status >= 500 {
		s.deps.Logger.WarnContext(ctx, "request failed", "status", ae.Status, "code", ae.Code, "err", err)
	} else {
		s.deps.Logger.InfoContext(ctx, "request refused", "status", ae.Status, "code", ae.Code, "err", err)
	}
	if ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests {
		secs := int(math.Ceil(ae.RetryAfter.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	if ae.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="botfleet"`)
	}
	_ = c.JSON(ae.Status, map[string]*apiError{"error": ae})
}
