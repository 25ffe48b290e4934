package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/labstack/echo/v4"
)

// Limits are the rate limits the API applies with Deps.Limiter.
type Limits struct {
	// PerIP is requests per second per client IP; 0 is none.
	PerIP int
	// PerKey is requests per second of a key whose record sets none.
	PerKey int
	// TurnTokens is a turn's token estimate beyond its request body: the
	// system prompt and history it may add, and its reply.
	TurnTokens int
}

const (
	ctxDecision = "botfleet.ratelimit.decision"
	ctxUsage    = "botfleet.ratelimit.usage"
)

// admitted records d's numbers in the RateLimit headers when it is the
// tightest limit of the request so far.
func admitted(c echo.Context, d ratelimit.Decision) {
	if d.Limit <= 0 {
		return
	}
	if prev, ok := c.Get(ctxDecision).(ratelimit.Decision); ok && prev.Allowed && d.Allowed &&
		float64(prev.Remaining)/float64(prev.Limit) <= float64(d.Remaining)/float64(d.Limit) {
		return
	}
	c.Set(ctxDecision, d)
	h := c.Response().Header()
	h.Set("RateLimit-Limit", strconv.FormatInt(d.Limit, 10))
	h.Set("RateLimit-Remaining", strconv.FormatInt(d.Remaining, 10))
	h.Set("RateLimit-Reset", strconv.Itoa(int(math.Ceil(d.Reset.Seconds()))))
}

// refused is the 429 of a refusal; a budget also says x-should-retry: false.
func refused(c echo.Context, d ratelimit.Decision) error {
	admitted(c, d)
	retry := fault.Retry(max(d.RetryAfter, time.Second))
	switch d.Scope {
	case "in_flight":
		return fault.New(http.StatusTooManyRequests, "too_many_in_flight", fmt.Sprintf("the key already has %d turns in flight; retry when one ends", d.Limit), retry)
	case "tokens":
		return fault.New(http.StatusTooManyRequests, "tokens_per_minute", fmt.Sprintf("the key used its %d tokens per minute; retry later", d.Limit), retry)
	case "budget":
		// Not temporary: the OpenAI route says X-Should-Retry: false, and so does this one.
		c.Response().Header().Set("X-Should-Retry", "false")
		return fault.New(http.StatusTooManyRequests, "budget_exhausted", fmt.Sprintf("the key's token budget of %d is used up", d.Limit))
	}
	return fault.New(http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("more than %d requests per %s for this %s; retry after the Retry-After seconds", d.Limit, per(d.Scope), scopeName(d.Scope)), retry)
}

func per(scope string) string {
	if scope == "rpm" || scope == "conversation" {
		return "minute"
	}
	return "second"
}

func scopeName(scope string) string {
	switch scope {
	case "ip":
		return "client address"
	case "conversation":
		return "conversation"
	}
	return "key"
}

// allow runs one rate admission and answers its refusal.
func (s *Server) allow(c echo.Context, scope, id string, r ratelimit.Rate) error {
	d, err := s.deps.Limiter.Allow(c.Request().Context(), scope, id, r)
	if err != nil {
		return err // ratelimit.ErrUnavailable, or the request's end
	}
	if !d.Allowed {
		return refused(c, d)
	}
	admitted(c, d)
	return nil
}

// limitIP limits requests per client IP, before authentication, so that
// guessing keys is limited too. Probes and metrics are not counted.
func (s *Server) limitIP() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			switch c.Path() {
			case "/health", "/ready", "/metrics":
				return next(c)
			}
			if s.deps.Limiter != nil && s.deps.Limits.PerIP > 0 {
				if err := s.allow(c, "ip", clientIP(c).String(), ratelimit.PerSecond(s.deps.Limits.PerIP)); err != nil {
					return err
				}
			}
			return next(c)
		}
	}
}

// limitKey limits the requests of the authenticated key: its own rps and
// rpm, else the fleet default per key.
func (s *Server) limitKey() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if s.deps.Limiter == nil {
				return next(c)
			}
			p := principal(c)
			rps := p.Limits.RequestsPerSecond
			if rps == 0 {
				rps = s.deps.Limits.PerKey
			}
			if err := s.allow(c, "key", p.KeyID, ratelimit.PerSecond(rps)); err != nil {
				return err
			}
			if err := s.allow(c, "rpm", p.KeyID, ratelimit.PerMinute(p.Limits.RequestsPerMinute)); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// quota admits a turn under its key's in-flight, tokens-per-minute and
// budget limits: it reserves the body's tokens plus TurnTokens up front
// and settles what the handler recorded with recordUsage at the end.
func (s *Server) quota() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := principal(c)
			q := ratelimit.Quota{MaxInFlight: p.Limits.MaxInFlight, TokensPerMinute: p.Limits.TokensPerMinute, Budget: p.Limits.TokenBudget}
			r := c.Request()
			if s.deps.Limiter == nil || q.IsZero() || r.Method != http.MethodPost {
				return next(c)
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return err // over the limit: bodyLimit answers
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			res, d, err := s.deps.Limiter.Reserve(r.Context(), p.KeyID, q, ratelimit.Tokens(string(body))+s.deps.Limits.TurnTokens)
			if err != nil {
				return err
			}
			if !d.Allowed {
				return refused(c, d)
			}
			defer func() {
				used, _ := c.Get(ctxUsage).(int)
				_ = res.Settle(r.Context(), used)
			}()
			return next(c)
		}
	}
}

// recordUsage tells quota what a turn used: the backend's count, else an
// estimate from its message and reply; nothing when no backend ran (a
// replay, the response cache).
func recordUsage(c echo.Context, message string, res chat.Result) {
	if res.Replayed || res.Backend == "cache" {
		return
	}
	used := res.Usage.PromptTokens + res.Usage.CompletionTokens
	if used == 0 {
		used = ratelimit.Tokens(message) + ratelimit.Tokens(res.Reply)
	}
	c.Set(ctxUsage, used)
}
