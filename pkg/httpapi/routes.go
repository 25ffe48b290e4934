package httpapi

import (
	"crypto/subtle"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes maps the whole API surface.
func (s *Server) routes() {
	e := s.echo
	e.Use(s.requestID())
	if s.deps.Tracing {
		e.Use(s.trace())
	}
	e.Use(s.observe(), s.recover())
	if len(s.deps.CORSOrigins) > 0 {
		e.Use(s.cors())
	}
	e.Use(s.limitIP())
	e.GET("/health", s.handleHealth())
	e.GET("/ready", s.handleReady())
	if !s.deps.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(s.Metrics()))
	}

	v1 := e.Group("/v1", s.bodyLimit(s.deps.MaxBodyBytes), s.authenticate(), s.limitKey(), s.quota())
	v1.POST("/chat", s.handleChat())
	v1.GET("/chat/streams/:id", s.handleResume())
	v1.POST("/chat/completions", s.handleCompletions())
	v1.GET("/models", s.handleModels())
	e.POST("/auth/token", s.handleToken(), s.bodyLimit(smallBodyBytes), s.authenticate(), s.limitKey())

	e.POST("/webhook/:platform", s.handleWebhook(), s.bodyLimit(s.deps.MaxWebhookBodyBytes))
	if s.deps.OneBotWS != nil {
		e.GET("/onebot/v11/ws", echo.WrapHandler(s.deps.OneBotWS))
	}
	if s.deps.Admin != nil {
		s.deps.Admin(e.Group("/admin"))
	}

	if s.deps.Pprof {
		e.Group("/debug/pprof", s.authenticate()).Any("/*", echo.WrapHandler(http.HandlerFunc(pprofIndex)))
	}
}

// Metrics is the Prometheus exposition of every package's metrics, behind
// MetricsToken when one is set: on the API's port, or on a listener of its
// own (MetricsElsewhere).
func (s *Server) Metrics() http.Handler {
	h := promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{})
	if s.deps.MetricsToken == "" {
		return h
	}
	want := []byte(s.deps.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(token), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="botfleet metrics"`)
			http.Error(w, `{"error":{"code":"unauthorized","message":"/metrics wants Authorization: Bearer <server.metrics_token>"}}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// pprofIndex serves net/http/pprof's handlers by path.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	default:
		pprof.Index(w, r)
	}
}
