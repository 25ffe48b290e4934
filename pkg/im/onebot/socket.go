package onebot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/coder/websocket"
)

// maxFrame bounds one WebSocket frame (events with long messages, CQ
// codes of images): larger ones end the connection.
const maxFrame = 4 << 20

// apiResult is a OneBot API answer.
type apiResult struct {
	Status  string          `json:"status"`
	RetCode int             `json:"retcode"`
	Data    json.RawMessage `json:"data"`
	Message string          `json:"message"`
	Wording string          `json:"wording"`
	Echo    json.RawMessage `json:"echo"`
}

// socket is one OneBot WebSocket that carries API calls (universal, or
// the API socket of a split pair): send_msg and the others go out with an
// echo and their answer is matched by it.
type socket struct {
	conn    *websocket.Conn
	seq     atomic.Uint64
	mu      sync.Mutex
	waiting map[string]chan apiResult
	closed  chan struct{}
	once    sync.Once
	// draining refuses new calls while the answers of those sent are
	// still read, so that a drain never leaves a send unanswered (a
	// reply that may or may not have gone out).
	draining atomic.Bool
}

// drainWait bounds how long a draining socket waits for the answers of the
// calls it sent.
const drainWait = 5 * time.Second

// errDraining refuses a call on a socket that is being handed over:
// nothing was sent, so the job may retry anywhere.
var errDraining = errors.New("onebot: the WebSocket is being handed over; nothing was sent")

func newSocket(c *websocket.Conn) *socket {
	c.SetReadLimit(maxFrame)
	return &socket{conn: c, waiting: map[string]chan apiResult{}, closed: make(chan struct{})}
}

// call sends action with params and waits for its answer.
func (s *socket) call(ctx context.Context, action string, params any) (apiResult, error) {
	echo := "bf-" + strconv.FormatUint(s.seq.Add(1), 10)
	ch := make(chan apiResult, 1)
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return apiResult{}, errDraining
	}
	s.waiting[echo] = ch
	s.mu.Unlock()
	defer func() { s.mu.Lock(); delete(s.waiting, echo); s.mu.Unlock() }()
	frame, _ := json.Marshal(map[string]any{"action": action, "params": params, "echo": echo})
	if err := s.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return apiResult{}, fmt.Errorf("onebot: %s over the WebSocket: %w", action, err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-s.closed:
		return apiResult{}, fmt.Errorf("onebot: the WebSocket closed before %s was answered (it may have been delivered)", action)
	case <-ctx.Done():
		return apiResult{}, fmt.Errorf("onebot: %s not answered (it may have been delivered): %w", action, ctx.Err())
	}
}

// read reads frames until the connection ends: API answers go to their
// callers, events to c. An event the pipeline could not queue (Redis is
// down) ends the connection: OneBot has no redelivery, so the
// implementation's reconnect is the retry the bot can ask for.
//
// When ctx ends (a drain), it refuses new calls and goes on reading the
// answers of those already sent, for at most drainWait.
func (s *socket) read(ctx context.Context, c *im.Conn) error {
	defer s.once.Do(func() { close(s.closed) })
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-rctx.Done():
			return
		}
		s.mu.Lock()
		s.draining.Store(true)
		s.mu.Unlock()
		deadline := time.NewTimer(drainWait)
		defer deadline.Stop()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			s.mu.Lock()
			n := len(s.waiting)
			s.mu.Unlock()
			if n == 0 {
				cancel()
				return
			}
			select {
			case <-deadline.C:
				cancel()
				return
			case <-tick.C:
			case <-rctx.Done():
				return
			}
		}
	}()
	for {
		typ, frame, err := s.conn.Read(rctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("onebot: read: %w", err)
		}
		if typ != websocket.MessageText {
			c.Logger().Warn("onebot: a binary frame; ignored", "bytes", len(frame))
			continue
		}
		if err := s.handle(rctx, c, frame); err != nil {
			return err
		}
	}
}

// handle handles one text frame from the implementation: an API answer goes
// to its caller, an event to c; the error is an event the pipeline could
// not queue. A frame that is not JSON is logged and ignored.
func (s *socket) handle(ctx context.Context, c *im.Conn, frame []byte) error {
	var head struct {
		PostType string          `json:"post_type"`
		Echo     json.RawMessage `json:"echo"`
	}
	if err := json.Unmarshal(frame, &head); err != nil {
		c.Logger().Warn("onebot: a frame that is not JSON; ignored", "err", err, "frame", string(frame[:min(len(frame), 200)]))
		return nil
	}
	if head.PostType == "" {
		s.answer(frame, head.Echo)
		return nil
	}
	// While draining, an event still arriving is queued all the same:
	// OneBot does not deliver it again.
	if _, err := c.Accept(ctx, frame); im.IsTemporary(err) {
		return fmt.Errorf("onebot: an event could not be queued: %w", err)
	}
	return nil
}

// answer hands an API answer to the call waiting for its echo. The send
// never blocks: a second answer with the same echo (an implementation
// repeating itself, or one arriving as the call gives up) is dropped rather
// than stopping the reader.
func (s *socket) answer(frame []byte, echo json.RawMessage) {
	var key string
	if err := json.Unmarshal(echo, &key); err != nil {
		key = string(bytes.TrimSpace(echo))
	}
	var r apiResult
	_ = json.Unmarshal(frame, &r)
	s.mu.Lock()
	ch := s.waiting[key]
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// sockets are the API sockets this instance holds, by self_id.
type sockets struct {
	mu sync.Mutex
	by map[string][]*socket
}

func (ss *sockets) add(self string, s *socket) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.by == nil {
		ss.by = map[string][]*socket{}
	}
	ss.by[self] = append(ss.by[self], s)
}

func (ss *sockets) remove(self string, s *socket) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	list := ss.by[self]
	for i, x := range list {
		if x == s {
			ss.by[self] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(ss.by[self]) == 0 {
		delete(ss.by, self)
	}
}

// get returns an API socket for self (the newest).
func (ss *sockets) get(self string) *socket {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	list := ss.by[self]
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

var errNoSocket = errors.New("onebot: no WebSocket to the implementation on this instance")
