package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

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
	if openaiRoute(c) {
		ms := max(f.RetryAfter.Milliseconds(), 1000)
		if f.Status == http.StatusServiceUnavailable || f.Status == http.StatusTooManyRequests {
			c.Response().Header().Set("Retry-After-Ms", strconv.FormatInt(ms, 10))
		}
		// The official SDKs retry 408, 409, 429 and 5xx unless told not to.
		c.Response().Header().Set("X-Should-Retry", strconv.FormatBool(f.Temporary))
		_ = c.JSON(f.Status, openaiErrorBody(f))
		return
	}
	var body errorBody
	body.Error.Code, body.Error.Message = f.Code, f.Message
	_ = c.JSON(f.Status, body)
}

// openaiRoute tells the routes that answer errors in OpenAI's shape.
func openaiRoute(c echo.Context) bool {
	p := c.Path()
	return p == "/v1/chat/completions" || p == "/v1/models"
}

// openaiError is OpenAI's error object.
type openaiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// openaiErrorBody is f in OpenAI's shape: its type from the status, the
// codes OpenAI's clients know where ours mean the same, and the parameter
// a refusal names ("messages[0].role: ...").
func openaiErrorBody(f fault.Error) openaiError {
	var e openaiError
	e.Error.Message, e.Error.Code = f.Message, f.Code
	switch {
	case f.Status == http.StatusUnauthorized:
		e.Error.Type = "authentication_error"
	case f.Status == http.StatusForbidden:
		e.Error.Type = "permission_error"
	case f.Status == http.StatusTooManyRequests:
		e.Error.Type = "rate_limit_error"
	case f.Status >= 500:
		e.Error.Type = "server_error"
	default:
		e.Error.Type = "invalid_request_error"
	}
	switch f.Code {
	case "missing_token", "invalid_token":
		e.Error.Code = "invalid_api_key"
	case "invalid_json":
		e.Error.Code = "invalid_request"
	}
	if param, _, ok := strings.Cut(f.Message, ": "); ok && isParam(param) {
		e.Error.Param = &param
	}
	return e
}

// isParam tells a request member's path ("messages[2].content").
func isParam(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '[' || r == ']') {
			return false
		}
	}
	return true
}
