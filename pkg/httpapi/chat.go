package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/labstack/echo/v4"
)

type chatRequest struct {
	Message   string `json:"message"`
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
	GroupID   string `json:"group_id"`
	Scope     string `json:"scope"`
}

// maxSessionID bounds a session id: longer than other ids, since a scoped
// conversation's session id holds its escaped group and user.
const maxSessionID = 1024

func (r chatRequest) valid(s *Server) error {
	if strings.TrimSpace(r.Message) == "" {
		return newError(http.StatusBadRequest, "invalid_request", "message: must not be empty")
	}
	if n := utf8.RuneCountInString(r.Message); n > s.deps.MaxMessageChars {
		return newError(http.StatusRequestEntityTooLarge, "message_too_long",
			fmt.Sprintf("message: %d characters, the limit is %d", n, s.deps.MaxMessageChars))
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"session_id", r.SessionID, maxSessionID}, {"user_id", r.UserID, maxID}, {"group_id", r.GroupID, maxID}} {
		if f.v != "" && (!validID(f.v, f.max) || strings.ContainsAny(f.v, "{}")) {
			return newError(http.StatusBadRequest, "invalid_request", fmt.Sprintf("%s: 1 to %d visible ASCII characters, no braces", f.name, f.max))
		}
	}
	return nil
}

type chatResponse struct {
	Reply      string  `json:"reply"`
	Confidence float64 `json:"confidence"`
	Timestamp  int64   `json:"timestamp"`
	SessionID  string  `json:"session_id"`
	Turn       int     `json:"turn"`
	Instance   string  `json:"instance"`
}

// handleChat is POST /v1/chat: one turn of a conversation.
func (s *Server) handleChat() echo.HandlerFunc {
	return func(c echo.Context) error {
		req, err := decode[chatRequest](s, c)
		if err != nil {
			return err
		}
		id, err := idempotencyKey(c)
		if err != nil {
			return err
		}
		res, err := s.deps.Chat.Turn(c.Request().Context(), chat.Request{
			Scope: req.Scope, SessionID: req.SessionID, UserID: req.UserID, GroupID: req.GroupID,
			ID: id, Message: req.Message, Endpoint: "chat",
		})
		if err != nil {
			return err
		}
		if res.Replayed {
			c.Response().Header().Set("Idempotent-Replayed", "true")
		}
		c.Response().Header().Set("X-Bot-Backend", res.Backend)
		return c.JSON(http.StatusOK, chatResponse{
			Reply: res.Reply, Confidence: res.Confidence, Timestamp: res.Timestamp,
			SessionID: res.SessionID, Turn: res.Turn, Instance: s.deps.Instance,
		})
	}
}
