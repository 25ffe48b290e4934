package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/labstack/echo/v4"
)

// handleHealth is liveness: the process serves. It never touches Redis.
func (s *Server) handleHealth() echo.HandlerFunc {
	return func(c echo.Context) error {
		body := map[string]any{"status": "ok", "instance": s.deps.Instance}
		if s.deps.Breakers != nil {
			body["breakers"] = s.deps.Breakers()
		}
		if s.deps.Links != nil {
			body["im_links"] = s.deps.Links()
		}
		return c.JSON(http.StatusOK, body)
	}
}

var errDraining = fault.New(http.StatusServiceUnavailable, "draining", "the instance is shutting down", fault.Retry(time.Second))

// handleReady is readiness: Redis answers and the instance is not draining.
func (s *Server) handleReady() echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.draining.Load() {
			return errDraining
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
		defer cancel()
		if err := s.deps.Ping(ctx); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready", "instance": s.deps.Instance})
	}
}
