package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/labstack/echo/v4"
)

var (
	errBadRequest  = fault.New(http.StatusBadRequest, "invalid_request", "the request cannot be served as sent")
	errInvalidJSON = fault.New(http.StatusBadRequest, "invalid_json", "malformed JSON body")
	errUnsupported = fault.New(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	errTooLarge    = fault.New(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", maxKeyBodyBytes))
)

// readTimeout bounds every Redis read of the console.
const readTimeout = 2 * time.Second

// deadLetters is how many dead letters the queue view lists.
const deadLetters = 50

// handleFleet is GET /admin/api/fleet: the registry's whole fleet, in one
// Redis read.
func (c *Console) handleFleet() echo.HandlerFunc {
	return func(ec echo.Context) error {
		if c.opts.Fleet == nil {
			return errNotHere
		}
		return read(ec, func(ctx context.Context) (any, error) { return c.opts.Fleet.Read(ctx) })
	}
}

// read answers with what get reads within readTimeout.
func read(ec echo.Context, get func(ctx context.Context) (any, error)) error {
	ctx, cancel := context.WithTimeout(ec.Request().Context(), readTimeout)
	defer cancel()
	v, err := get(ctx)
	if err != nil {
		return err
	}
	return ec.JSON(http.StatusOK, v)
}

// queuesView is GET /admin/api/queues's answer.
type queuesView struct {
	queue.Stats
	// Dead are the oldest dead letters, with their reasons.
	Dead []queue.DeadLetter `json:"dead"`
}

// handleQueues is GET /admin/api/queues: every priority's depth, pending
// jobs, lag and oldest age, and the dead letters with their reasons.
func (c *Console) handleQueues() echo.HandlerFunc {
	return func(ec echo.Context) error {
		if c.opts.Queues == nil {
			return errNotHere
		}
		return read(ec, func(ctx context.Context) (any, error) {
			st, err := c.opts.Queues.Stats(ctx)
			if err != nil {
				return nil, err
			}
			dead, err := c.opts.Queues.DeadLetters(ctx, deadLetters)
			return queuesView{Stats: st, Dead: dead}, err
		})
	}
}

// handleRequeue is POST /admin/api/queues/dead/:id/requeue.
func (c *Console) handleRequeue() echo.HandlerFunc {
	return func(ec echo.Context) error {
		if c.opts.Queues == nil {
			return errNotHere
		}
		id := ec.Param("id")
		p, entry, err := c.opts.Queues.Requeue(ec.Request().Context(), id)
		c.audit(ec, ec.Get("principal").(principal), "requeue", id, err)
		if err != nil {
			return err
		}
		return ec.JSON(http.StatusOK, map[string]string{"requeued": id, "priority": string(p), "id": entry})
	}
}

// handleDrop is DELETE /admin/api/queues/dead/:id.
func (c *Console) handleDrop() echo.HandlerFunc {
	return func(ec echo.Context) error {
		if c.opts.Queues == nil {
			return errNotHere
		}
		id := ec.Param("id")
		err := c.opts.Queues.Drop(ec.Request().Context(), id)
		c.audit(ec, ec.Get("principal").(principal), "drop", id, err)
		if err != nil {
			return err
		}
		return ec.NoContent(http.StatusNoContent)
	}
}

// conversationView is GET /admin/api/conversations's answer.
type conversationView struct {
	// Key is the memory key Resolve made, SessionID what names it again.
	Key        string         `json:"key"`
	SessionID  string         `json:"session_id,omitempty"`
	Turns      int            `json:"turns"`
	TTLSeconds float64        `json:"ttl_seconds"`
	Waiting    int64          `json:"waiting"`
	Entries    []memory.Entry `json:"entries"`
}

// lookup is the conversation a request names: the HTTP API's (tenant,
// session_id or scope, user_id, group_id) or an IM chat's (platform,
// scope, user_id, group_id), as the turns themselves name it.
func (c *Console) lookup(ec echo.Context) (chat.Request, error) {
	if c.opts.Conversations == nil {
		return chat.Request{}, errNotHere
	}
	q := ec.QueryParams()
	r := chat.Request{Tenant: q.Get("tenant"), Platform: q.Get("platform"), Scope: q.Get("scope"),
		SessionID: q.Get("session_id"), UserID: q.Get("user_id"), GroupID: q.Get("group_id")}
	if r.Platform != "" && r.Scope == "" {
		r.Scope = chat.ScopeMember
	}
	for _, v := range []string{r.Tenant, r.Platform, r.Scope, r.SessionID, r.UserID, r.GroupID} {
		if len(v) > 256 || strings.ContainsFunc(v, func(c rune) bool { return c < ' ' }) {
			return r, errBadRequest.With("ids are at most 256 characters, without control characters")
		}
	}
	if r.SessionID == "" && r.UserID == "" && r.GroupID == "" && r.Scope != chat.ScopeGlobal {
		return r, errBadRequest.With("name a conversation: session_id, or user_id and/or group_id (with platform for an IM chat), or scope=global")
	}
	return r, nil
}

// handleConversation is GET /admin/api/conversations?...: a
// conversation's memory and turn count.
func (c *Console) handleConversation() echo.HandlerFunc {
	return func(ec echo.Context) error {
		r, err := c.lookup(ec)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ec.Request().Context(), readTimeout)
		defer cancel()
		conv, info, err := c.opts.Conversations.Inspect(ctx, r)
		if err != nil {
			return err
		}
		if info.Entries == nil {
			info.Entries = []memory.Entry{}
		}
		return ec.JSON(http.StatusOK, conversationView{Key: conv.Key, SessionID: conv.SessionID, Turns: info.Turns,
			TTLSeconds: info.TTL.Seconds(), Waiting: info.Waiting, Entries: info.Entries})
	}
}

// handleClear is DELETE /admin/api/conversations?...: forget a
// conversation's memory.
func (c *Console) handleClear() echo.HandlerFunc {
	return func(ec echo.Context) error {
		r, err := c.lookup(ec)
		if err != nil {
			return err
		}
		conv, had, err := c.opts.Conversations.Clear(ec.Request().Context(), r)
		c.audit(ec, ec.Get("principal").(principal), "clear_conversation", conv.Key, err)
		if err != nil {
			return err
		}
		return ec.JSON(http.StatusOK, map[string]any{"key": conv.Key, "cleared": had})
	}
}

// audit logs an admin write (or a login) with who did it, from where, to
// what, and how it ended.
func (c *Console) audit(ec echo.Context, p principal, action, target string, err error) {
	r := ec.Request()
	attrs := []any{"audit", true, "action", action, "principal", p.String(), "remote", ec.RealIP(),
		"method", r.Method, "path", r.URL.Path}
	if target != "" {
		attrs = append(attrs, "target", target)
	}
	if err != nil {
		f := fault.Of(err)
		c.opts.Logger.WarnContext(r.Context(), "admin: "+action+" refused", append(attrs, "status", f.Status, "code", f.Code)...)
		return
	}
	c.opts.Logger.InfoContext(r.Context(), "admin: "+action, attrs...)
}
