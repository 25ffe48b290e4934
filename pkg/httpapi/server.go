// Package httpapi is an instance's HTTP surface: the chat API, health and
// readiness, metrics. routes.go maps all of it.
package httpapi

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/contentfilter"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Deps are everything the API needs.
type Deps struct {
	Logger *slog.Logger
	// Registerer gets the HTTP layer's metrics; Gatherer is what /metrics
	// serves (every package's metrics).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	Chat       *chat.Service
	// Ping tells whether Redis answers; /ready uses it.
	Ping func(ctx context.Context) error
	// Breakers reports each backend's circuit state for /health.
	Breakers func() map[string]string
	// Instance is the instance name put in replies.
	Instance string
	// Auth checks Bearer credentials; AuthDisabled accepts anyone.
	Auth         *auth.Authenticator
	AuthDisabled bool
	// Limiter applies Limits and the keys' quotas; nil limits nothing.
	Limiter *ratelimit.Limiter
	Limits  Limits
	// TrustedProxies are the peers whose X-Forwarded-For / X-Real-IP are
	// believed.
	TrustedProxies []netip.Prefix
	// CORSOrigins may call the API from a browser (none: CORS off); a
	// preflight answer is cached CORSMaxAge.
	CORSOrigins []string
	CORSMaxAge  time.Duration
	// Filter screens chat messages; nil lets everything through.
	Filter *contentfilter.Filter
	// MaxBodyBytes bounds chat request bodies, MaxWebhookBodyBytes
	// webhooks'; MaxHeaderCount header fields; MaxMessageChars messages.
	MaxBodyBytes        int64
	MaxWebhookBodyBytes int64
	MaxHeaderCount      int
	MaxMessageChars     int
	// Pprof serves net/http/pprof under /debug/pprof/, behind auth.
	Pprof bool
	// Tracing starts an OpenTelemetry server span per request.
	Tracing bool
	// AccessLog says which requests get an "http" log line.
	AccessLog AccessLog
	// Webhooks handles POST /webhook/:platform; nil answers 404.
	Webhooks Webhooks
	// Admin maps the admin console and its API on the /admin group
	// (console.Console.Routes); nil leaves /admin unmapped.
	Admin func(*echo.Group)
	// MetricsElsewhere leaves /metrics off the API's port (the caller
	// serves Server.Metrics on a listener of its own); MetricsToken, when
	// set, is the Bearer token /metrics requires.
	MetricsElsewhere bool
	MetricsToken     string
	// Models lists the models for GET /v1/models.
	Models func() []llm.ModelInfo
	// Stream tunes streamed answers.
	Stream StreamOptions
	// Links reports the IM stream-mode connections for /health; nil omits them.
	Links func() any
	// OneBotWS serves OneBot v11 reverse WebSocket at /onebot/v11/ws; nil answers 404.
	OneBotWS http.Handler
}

// AccessLog says which requests get an "http" log line: every error answer
// (status 400 and up), every request slower than Slow, and a Sample share
// (0..1) of the rest. The zero value logs errors only.
type AccessLog struct {
	Sample float64
	// Slow 0 logs no request for being slow.
	Slow time.Duration
}

// logs tells whether a request answered status after elapsed gets a line.
func (a AccessLog) logs(status int, elapsed time.Duration) bool {
	return status >= 400 || (a.Slow > 0 && elapsed >= a.Slow) || (a.Sample > 0 && rand.Float64() < a.Sample)
}

// StreamOptions tune streamed answers (Server-Sent Events).
type StreamOptions struct {
	// Heartbeat is how long a stream may stay silent before a comment
	// keeps it alive.
	Heartbeat time.Duration
	// WriteTimeout bounds each write of a stream (the server's own write
	// timeout would cut a long one).
	WriteTimeout time.Duration
	// DetachOnDisconnect lets a /v1/chat stream's turn run to its end when
	// its client goes away, so that it can resume; /v1/chat/completions
	// always cancels the backend call, as OpenAI's API does.
	DetachOnDisconnect bool
	// MaxDuration bounds a detached turn.
	MaxDuration time.Duration
}

// Server is the HTTP API of one instance.
type Server struct {
	deps     Deps
	echo     *echo.Echo
	metrics  *metrics
	started  time.Time
	draining atomic.Bool
}

// New returns the API with every route mapped.
func New(deps Deps) *Server {
	s := &Server{deps: deps, echo: echo.New(), metrics: newMetrics(deps.Registerer), started: time.Now()}
	s.echo.HideBanner = true
	s.echo.HidePort = true
	s.echo.HTTPErrorHandler = s.handleError
	s.echo.IPExtractor = ipExtractor(deps.TrustedProxies)
	s.routes()
	return s
}

// Handler returns the API as an http.Handler.
func (s *Server) Handler() http.Handler { return s.headerLimit(s.echo) }

// Drain makes /ready answer 503 so that load balancers stop sending work.
func (s *Server) Drain() { s.draining.Store(true) }

// Draining tells whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }
