package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// handleHealth is liveness: the process serves. It never touches Redis.
func (s *Server) handleHealth() echo.HandlerFunc {
	return func(c echo.Context) error {
		body := map[string]any{"status": "ok", "instance": s.deps.Instance}
		if s.deps.Breakers != nil {
			body["breakers"] = s.deps.Breakers()
		}
		return c.JSON(http.StatusOK, body)
	}
}

// handleReady is readiness: Redis answers and the instance is not draining.
func (s *Server) handleReady() echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.draining.Load() {
			return &apiError{Status: http.StatusServiceUnavailable, Code: "draining", Message: "the instance is shutting down", RetryAfter: time.Second}
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
		defer cancel()
		if err := s.deps.Ping(ctx); err != nil {
			return &apiError{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "Redis does not answer: " + err.Error(), RetryAfter: time.Second, cause: err}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready", "instance": s.deps.Instance})
	}
}
