package httpapi

import (
	"context"
	"encoding/json"
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
	Model     string `json:"model"`
	Stream    bool   `json:"stream"`
}

// maxSessionID bounds a session id: longer than other ids, since a scoped
// conversation's session id holds its escaped group and user.
const maxSessionID = 1024

func (r chatRequest) valid(s *Server) error {
	if err := s.validMessage("message", r.Message); err != nil {
		return err
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

// validMessage checks a user message: not empty, at most MaxMessageChars.
func (s *Server) validMessage(field, m string) error {
	if strings.TrimSpace(m) == "" {
		return newError(http.StatusBadRequest, "invalid_request", field+": must not be empty")
	}
	if n := utf8.RuneCountInString(m); n > s.deps.MaxMessageChars {
		return newError(http.StatusRequestEntityTooLarge, "message_too_long",
			fmt.Sprintf("%s: %d characters, the limit is %d", field, n, s.deps.MaxMessageChars))
	}
	return nil
}

// ChatResponse is the answer of POST /v1/chat, and the data of its
// stream's done event.
type ChatResponse struct {
	Reply      string  `json:"reply"`
	Confidence float64 `json:"confidence"`
	Timestamp  int64   `json:"timestamp"`
	SessionID  string  `json:"session_id"`
	Turn       int     `json:"turn"`
	Instance   string  `json:"instance"`
}

func (s *Server) chatResponse(res chat.Result) ChatResponse {
	return ChatResponse{Reply: res.Reply, Confidence: res.Confidence, Timestamp: res.Timestamp,
		SessionID: res.SessionID, Turn: res.Turn, Instance: s.deps.Instance}
}

// handleChat is POST /v1/chat: one turn of a conversation, in one piece or
// (stream: true) as Server-Sent Events.
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
		creq := chat.Request{
			Scope: req.Scope, SessionID: req.SessionID, UserID: req.UserID, GroupID: req.GroupID,
			ID: id, Message: req.Message, Model: req.Model, Endpoint: "chat",
		}
		if err := s.admitTurn(c, &creq); err != nil {
			return err
		}
		if req.Stream {
			return s.streamChat(c, creq)
		}
		res, err := s.turn(c, c.Request().Context(), creq)
		if err != nil {
			return err
		}
		s.turnHeaders(c, res)
		return c.JSON(http.StatusOK, s.chatResponse(res))
	}
}

func (s *Server) turnHeaders(c echo.Context, res chat.Result) {
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	c.Response().Header().Set("X-Bot-Backend", res.Backend)
}

// streamChat answers /v1/chat with stream: true. Its events: "start"
// (turn, session_id, model, instance, attempt), "delta" ({"delta"}) for
// each piece, then "done" with the whole response as /v1/chat answers it,
// or "error" ({"error": {"code", "message"}}). Each start and delta has an
// id to resume after (Last-Event-ID); a start after deltas means the reply
// begins anew. With stream.detach_on_disconnect (the default) the turn
// runs to its end when the client goes away, so that it can resume.
func (s *Server) streamChat(c echo.Context, creq chat.Request) error {
	st := s.newStream(c)
	defer st.sse.close()
	ctx := c.Request().Context()
	detach := s.deps.Stream.DetachOnDisconnect
	if detach {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), s.deps.Stream.MaxDuration)
		defer cancel()
	}
	creq.After = c.Request().Header.Get("Last-Event-ID")
	creq.Stream = func(ev chat.Event) error {
		var err error
		switch ev.Kind {
		case "start":
			st.hold(ev)
			return nil
		case "piece":
			err = st.send(ev.ID, "delta", map[string]string{"delta": ev.Text})
		}
		if detach && err == errClientGone {
			return nil // the turn goes on, and is stored for a resume
		}
		return err
	}
	res, err := s.turn(st.c, ctx, creq)
	return st.finish(err, func() error { return st.send("", "done", s.chatResponse(res)) })
}

// chatStream renders a streamed turn as /v1/chat's events.
type chatStream struct {
	s     *Server
	c     echo.Context
	sse   *sse
	start *chat.Event // held until the first piece
}

func (s *Server) newStream(c echo.Context) *chatStream {
	return &chatStream{s: s, c: c, sse: newSSE(c, s.deps.Stream.Heartbeat, s.deps.Stream.WriteTimeout)}
}

// hold keeps a start event until the first piece: a turn that fails
// before its reply begins gets an ordinary error status.
func (st *chatStream) hold(ev chat.Event) { st.start = &ev }

// send writes an event, the held start first.
func (st *chatStream) send(id, name string, v any) error {
	if st.start != nil {
		ev := st.start
		st.start = nil
		start := ev.Start
		if start.Instance == "" {
			start.Instance = st.s.deps.Instance
		}
		if err := st.sse.event(ev.ID, "start", mustJSON(start)); err != nil {
			return err
		}
	}
	return st.sse.event(id, name, mustJSON(v))
}

// finish ends the stream: done when the turn succeeded, else its error —
// as an ordinary error answer when nothing was sent yet, else as an
// "error" event.
func (st *chatStream) finish(err error, done func() error) error {
	if err == nil {
		_ = done()
		return nil
	}
	if !st.sse.Started() {
		return err
	}
	f := classify(err)
	st.s.deps.Logger.WarnContext(st.c.Request().Context(), "stream failed", "status", f.Status, "code", f.Code, "err", err)
	var body errorBody
	body.Error.Code, body.Error.Message = f.Code, f.Message
	_ = st.sse.event("", "error", mustJSON(body))
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// handleResume is GET /v1/chat/streams/:id: the stream of a turn, named by
// its request id (the Idempotency-Key it was sent with, or its
// X-Request-Id), from after Last-Event-ID, live to its end, in
// /v1/chat's events.
func (s *Server) handleResume() echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		if !validID(id, maxID) {
			return newError(http.StatusBadRequest, "invalid_request", "id: 1 to 128 visible ASCII characters")
		}
		st := s.newStream(c)
		defer st.sse.close()
		creq := chat.Request{Tenant: principal(c).Tenant, ID: id, After: c.Request().Header.Get("Last-Event-ID")}
		creq.Stream = func(ev chat.Event) error {
			if ev.Kind == "start" {
				st.hold(ev)
				return nil
			}
			return st.send(ev.ID, "delta", map[string]string{"delta": ev.Text})
		}
		res, err := s.deps.Chat.Resume(c.Request().Context(), creq)
		return st.finish(err, func() error { return st.send("", "done", s.chatResponse(res)) })
	}
}
