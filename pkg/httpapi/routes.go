package httpapi

import (
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
	e.GET("/health", s.handleHealth())
	e.GET("/ready", s.handleReady())
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{})))

	v1 := e.Group("/v1", s.auth())
	v1.POST("/chat", s.handleChat())
	v1.GET("/chat/streams/:id", s.handleResume())
	v1.POST("/chat/completions", s.handleCompletions())
	v1.GET("/models", s.handleModels())

	e.POST("/webhook/:platform", s.handleWebhook())
	e.GET("/admin/queues", s.handleQueues(), s.auth())

	if s.deps.Pprof {
		e.Group("/debug/pprof", s.auth()).Any("/*", echo.WrapHandler(http.HandlerFunc(pprofIndex)))
	}
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
