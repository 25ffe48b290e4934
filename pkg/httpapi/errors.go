package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/labstack/echo/v4"
)

// newError is a refusal made here, in the HTTP layer.
func newError(status int, code, message string) *fault.Error {
	return fault.New(status, code, message)
}

// classify maps an error from anywhere below to its answer: its own
// classification (pkg/fault), or echo's for routing errors.
func classify(err error) fault.Error {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		return fault.Error{Status: he.Code, Code: codeOf(he.Code), Message: msg}
	}
	return fault.Of(err)
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

// errorBody is every error's JSON: {"error": {"code", "message"}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// handleError answers every error of every route in one JSON shape, with
// Retry-After on 429 and 503, and logs it.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	f := classify(err)
	ctx := c.Request().Context()
	if f.Status >= 500 {
		s.deps.Logger.WarnContext(ctx, "request failed", "status", f.Status, "code", f.Code, "err", err)
	} else {
		s.deps.Logger.InfoContext(ctx, "request refused", "status", f.Status, "code", f.Code, "err", err)
	}
	if f.Status == http.StatusServiceUnavailable || f.Status == http.StatusTooManyRequests {
		secs := int(math.Ceil(f.RetryAfter.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	if f.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="botfleet"`)
	}
	var body errorBody
	body.Error.Code, body.Error.Message = f.Code, f.Message
	_ = c.JSON(f.Status, body)
}
