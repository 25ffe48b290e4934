package httpapi

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes maps the whole API surface.
func (s *Server) routes() {
	e := s.echo
	e.Use(s.recover(), s.requestID(), s.observe())
	e.GET("/health", s.handleHealth())
	e.GET("/ready", s.handleReady())
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.deps.Metrics.Registry, promhttp.HandlerOpts{})))

	v1 := e.Group("/v1", s.auth())
	v1.POST("/chat", s.handleChat())
}
