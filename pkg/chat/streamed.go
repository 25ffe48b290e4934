package chat

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/stream"
	"github.com/redis/go-redis/v9"
)

// errTakeOver tells Turn that the request it followed is not streaming
// (any more) where it runs: wait for it, or run it once its holder's lease
// has ended.
var errTakeOver = errors.New("chat: take the request over")

// streamRun streams one run of a turn: to its caller, and to Redis when
// the service keeps streams.
type streamRun struct {
	emit    func(Event) error
	w       *stream.Writer // nil without a stream store
	attempt int
	seq     int
}

func (s *Service) start(r Request, turn, attempt int) Start {
	model := r.Model
	if model == "" {
		model = s.opts.Model
	}
	return Start{Turn: turn, Model: model, Created: s.now().Unix(), Instance: s.opts.Instance, Attempt: attempt}
}

// startStream begins the turn's stream in Redis (the next attempt of it)
// and sends its start to the caller.
func (s *Service) startStream(ctx context.Context, conv Conversation, reqID string, r Request, turn int) (*streamRun, error) {
	run := &streamRun{emit: r.Stream, attempt: 1}
	st := s.start(r, turn, 1)
	st.SessionID = conv.SessionID
	if s.opts.Streams != nil {
		meta, _ := json.Marshal(st)
		w, err := s.opts.Streams.Start(ctx, s.streamKey(conv, reqID, r.ID), meta)
		if err != nil {
			return nil, err
		}
		run.w, run.attempt = w, w.Attempt()
		st.Attempt = w.Attempt()
	}
	return run, run.start(st)
}

func (run *streamRun) start(st Start) error {
	return run.emit(Event{Kind: "start", ID: strconv.Itoa(run.attempt) + ".0", Start: st})
}

// piece passes a piece of the reply on: to Redis, then to the caller.
func (run *streamRun) piece(text string) error {
	var id string
	if run.w != nil {
		id = run.w.Piece(text)
	} else {
		run.seq++
		id = strconv.Itoa(run.attempt) + "." + strconv.Itoa(run.seq)
	}
	return run.emit(Event{Kind: "piece", ID: id, Text: text})
}

// end is what the commit round trip adds to end the stream in Redis.
func (run *streamRun) end(res Result) []func(redis.Pipeliner) {
	if run == nil || run.w == nil {
		return nil
	}
	b, _ := json.Marshal(streamEnd{res, res.Turn, res.SessionID})
	return []func(redis.Pipeliner){run.w.End(b)}
}

// fail ends the stream in Redis with err, so that followers stop waiting.
func (run *streamRun) fail(err error) {
	if run == nil || run.w == nil {
		return
	}
	f := fault.Of(err)
	run.w.Fail(f.Code, f.Message)
}

func (s *Service) streamKey(conv Conversation, reqID, clientID string) stream.Key {
	return stream.Key{Conversation: conv.Key, RequestID: reqID, Namespace: conv.namespace, ClientID: clientID}
}

// follow streams a request that runs elsewhere from its stream in Redis:
// what the caller has not seen (after r.After), then live to its end. A
// stream that is not there, stalls (its producer died) or ends in an
// error is errTakeOver: Turn waits for the request or runs it again.
func (s *Service) follow(ctx context.Context, conv Conversation, reqID string, r Request) (Result, error) {
	if s.opts.Streams == nil {
		return Result{}, errTakeOver
	}
	end, err := s.opts.Streams.Follow(ctx, s.streamKey(conv, reqID, r.ID), r.After, s.relay(r.Stream))
	switch {
	case errors.Is(err, stream.ErrNotFound), errors.Is(err, stream.ErrStalled):
		return Result{}, errTakeOver
	case err != nil:
		return Result{}, err
	case end.Kind == "error":
		return Result{}, errTakeOver
	}
	var e streamEnd
	if err := json.Unmarshal(end.Data, &e); err != nil {
		return Result{}, err
	}
	res := e.Result
	res.Turn, res.Replayed, res.SessionID = e.Turn, true, conv.SessionID
	return res, nil
}

// streamEnd is what a stream's end holds: the result with its turn and
// session id.
type streamEnd struct {
	Result
	Turn      int    `json:"turn"`
	SessionID string `json:"session_id,omitempty"`
}

// Resume streams the turn a client names by its request id (r.ID, its
// Idempotency-Key, within r.Tenant): what came after r.After, then live to
// its end. It runs nothing: a stream that is not there (never started,
// expired, another tenant's) is stream.ErrNotFound, one whose instance
// died is stream.ErrStalled — the client sends its request again.
func (s *Service) Resume(ctx context.Context, r Request) (res Result, err error) {
	r.Endpoint = "resume"
	start := time.Now()
	defer s.metrics.begin(&r, start)()
	defer func() { s.metrics.observe(r, res, err, time.Since(start)) }()
	if s.opts.Streams == nil || r.ID == "" {
		return Result{}, stream.ErrNotFound
	}
	ns := namespaceOf(r)
	conv, err := s.opts.Streams.Lookup(ctx, ns, r.ID)
	if err != nil {
		return Result{}, err
	}
	c := Conversation{Key: conv, namespace: ns}
	end, err := s.opts.Streams.Follow(ctx, s.streamKey(c, c.requestID(r.ID), r.ID), r.After, s.relay(r.Stream))
	if err != nil {
		return Result{}, err
	}
	if end.Kind == "error" {
		return Result{}, fault.New(http.StatusBadGateway, end.Code, end.Message)
	}
	var e streamEnd
	if err := json.Unmarshal(end.Data, &e); err != nil {
		return Result{}, err
	}
	res = e.Result
	res.Turn, res.Replayed, res.SessionID = e.Turn, true, e.SessionID
	return res, nil
}

// replay streams a request that finished: its stream while Redis keeps
// it, else the stored reply in one piece after a start of attempt 0.
func (s *Service) replay(ctx context.Context, conv Conversation, reqID string, rec *memory.Record, r Request) (Result, error) {
	var res Result
	if err := json.Unmarshal(rec.Payload, &res); err != nil {
		return Result{}, err
	}
	res.Turn, res.Replayed, res.SessionID = rec.Turn, true, conv.SessionID
	if r.Stream == nil {
		return res, nil
	}
	if s.opts.Streams != nil {
		end, err := s.opts.Streams.Follow(ctx, s.streamKey(conv, reqID, r.ID), r.After, s.relay(r.Stream))
		if err == nil && end.Kind == "end" {
			return res, nil
		}
		if err != nil && !errors.Is(err, stream.ErrNotFound) {
			return Result{}, err
		}
	}
	run := &streamRun{emit: r.Stream}
	st := s.start(r, rec.Turn, 0)
	st.SessionID, st.Model, st.Created = conv.SessionID, res.Model, res.Timestamp
	if err := run.start(st); err != nil {
		return Result{}, err
	}
	if err := run.piece(res.Reply); err != nil {
		return Result{}, err
	}
	return res, nil
}

// relay passes a followed stream's start and pieces on to the caller.
func (s *Service) relay(emit func(Event) error) func(stream.Event) error {
	return func(e stream.Event) error {
		switch e.Kind {
		case "start":
			var st Start
			_ = json.Unmarshal(e.Data, &st)
			st.Attempt = e.Attempt
			return emit(Event{Kind: "start", ID: e.ID, Start: st})
		case "piece":
			return emit(Event{Kind: "piece", ID: e.ID, Text: e.Text})
		}
		return nil
	}
}
