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

func (r chatRequest) valid(s *Server) error {
	if strings.TrimSpace(r.Message) == "" {
		return newError(http.StatusBadRequest, "invalid_request", "message: must not be empty")
	}
	if !utf8.ValidString(r.Message) {
		return newError(http.StatusBadRequest, "invalid_request", "message: must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(r.Message); n > s.deps.MaxMessageChars {
		return newError(http.StatusRequestEntityTooLarge, "message_too_long",
			fmt.Sprintf("message: %d characters, the limit is %d", n, s.deps.MaxMessageChars))
	}
	for _, f := range []struct{ name, v string }{{"session_id", r.SessionID}, {"user_id", r.UserID}, {"group_id", r.GroupID}} {
		if f.v != "" && (!validID(f.v) || strings.ContainsAny(f.v, "{}")) {
			return newError(http.StatusBadRequest, "invalid_request", f.name+": 1 to 128 visible ASCII characters, no braces")
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
		session := req.SessionID
		if session == "" && req.Scope == "" && req.UserID == "" && req.GroupID == "" {
			session = newID() // a new conversation; the client continues it with this id
		}
		scope := req.Scope
		if scope == "" {
			scope = s.deps.DefaultScope
		}
		conv, err := chat.Conversation(scope, session, req.UserID, req.GroupID)
		if err != nil {
			return err
		}
		if session == "" {
			session = conv
		}
		id := c.Request().Header.Get("Idempotency-Key")
		if id == "" {
			id = c.Response().Header().Get(headerRequestID)
		} else if !validID(id) {
			return newError(http.StatusBadRequest, "invalid_request", "Idempotency-Key: 1 to 128 visible ASCII characters")
		}
		res, err := s.deps.Chat.Turn(c.Request().Context(), chat.Request{Conversation: conv, ID: id, Message: req.Message})
		if err != nil {
			s.deps.Metrics.Turns.WithLabelValues("failed").Inc()
			return err
		}
		outcome := "answered"
		switch {
		case res.Replayed:
			outcome = "replayed"
			c.Response().Header().Set("Idempotent-Replayed", "true")
		case res.Backend == "cache":
			outcome = "cached"
		}
		s.deps.Metrics.Turns.WithLabelValues(outcome).Inc()
		c.Response().Header().Set("X-Bot-Backend", res.Backend)
		return c.JSON(http.StatusOK, chatResponse{
			Reply: res.Reply, Confidence: res.Confidence, Timestamp: res.Timestamp,
			SessionID: session, Turn: res.Turn, Instance: s.deps.Instance,
		})
	}
}
