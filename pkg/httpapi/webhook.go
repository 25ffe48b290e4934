package httpapi

import (
	"context"
	"net/http"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/labstack/echo/v4"
)

// Webhooks handles IM platforms' webhooks; *im.Pipeline is one.
type Webhooks interface {
	Webhook(ctx context.Context, platform string, header http.Header, body []byte) (im.Response, error)
}

// handleWebhook is POST /webhook/:platform: the platform's adapter verifies
// and parses the raw body, the pipeline dedups and queues it, and the
// platform gets its answer at once; the reply is sent later by a queue
// worker.
func (s *Server) handleWebhook() echo.HandlerFunc {
	return func(c echo.Context) error {
		platform := c.Param("platform")
		if s.deps.Webhooks == nil {
			return newError(http.StatusNotFound, "platform_off", "the "+platform+" webhook is off: no IM platform is configured")
		}
		r := c.Request()
		body, err := readBody(s, c, "")
		if err != nil {
			return err
		}
		resp, err := s.deps.Webhooks.Webhook(r.Context(), platform, r.Header, body)
		if err != nil {
			return err
		}
		if len(resp.Body) == 0 {
			return c.NoContent(resp.Status)
		}
		return c.Blob(resp.Status, resp.ContentType, resp.Body)
	}
}
