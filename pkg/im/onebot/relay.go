package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/botfleet/botfleet/pkg/lease"
	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/redis/go-redis/v9"
)

// The relay carries API calls to the instance that holds a WebSocket to
// the implementation, when the job that replies runs on another one (a
// reverse socket lands on one instance; a `one` forward link lives on one).
//
//	<prefix>:im:onebot:calls:<self_id>  list of calls; a socket holder BLPOPs each exactly once
//	<prefix>:im:onebot:ret:<call id>    list: the call's answer, for the caller's BLPOP (expires in a minute)
//
// A call the caller gave up on is removed with LREM: when it was still
// there no instance took it and the send can be retried safely; when it
// was taken, it may have been delivered, like an HTTP call that timed out.
// A holder drops a call past its deadline instead of running it late.
type relayCall struct {
	ID       string          `json:"id"`
	Action   string          `json:"action"`
	Params   json.RawMessage `json:"params"`
	Deadline int64           `json:"deadline"` // Unix ms
}

func (a *Adapter) callsKey(self string) string { return a.o.Prefix + ":im:onebot:calls:" + self }
func (a *Adapter) retKey(id string) string     { return a.o.Prefix + ":im:onebot:ret:" + id }

// relay makes a call through whichever instance holds a socket for self.
func (a *Adapter) relay(ctx context.Context, self, action string, params any) (apiResult, error) {
	p, _ := json.Marshal(params)
	call := relayCall{ID: lease.NewOwner(), Action: action, Params: p, Deadline: time.Now().Add(a.o.CallTimeout).UnixMilli()}
	raw, _ := json.Marshal(call)
	if err := a.o.Redis.RPush(ctx, a.callsKey(self), raw).Err(); err != nil {
		return apiResult{}, fmt.Errorf("onebot: relay %s: %w", action, err)
	}
	// Wait a little past the deadline, for an answer to a call taken just before it.
	res, err := a.o.Redis.BLPop(ctx, a.o.CallTimeout+time.Second, a.retKey(call.ID)).Result()
	if err == nil && len(res) == 2 {
		var r apiResult
		if err := json.Unmarshal([]byte(res[1]), &r); err != nil {
			return apiResult{}, fmt.Errorf("onebot: relayed %s: a malformed answer: %w", action, err)
		}
		return r, nil
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	n, lerr := a.o.Redis.LRem(bg, a.callsKey(self), 1, raw).Result()
	if lerr == nil && n == 1 {
		return apiResult{}, fmt.Errorf("%w (self_id %s): none took the relayed %s; retry when the implementation is connected", errNoSocket, self, action)
	}
	if err == nil || errors.Is(err, redis.Nil) {
		err = context.DeadlineExceeded
	}
	return apiResult{}, fmt.Errorf("onebot: relayed %s taken but not answered (it may have been delivered): %w", action, err)
}

// serveRelay runs relayed calls for self over s until ctx ends.
func (a *Adapter) serveRelay(ctx context.Context, self string, s *socket, log *slog.Logger) {
	for ctx.Err() == nil {
		res, err := a.o.Redis.BLPop(ctx, time.Second, a.callsKey(self)).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("onebot: relay read failed", "err", err)
				pause.For(ctx, 500*time.Millisecond)
			}
			continue
		}
		var call relayCall
		if err := json.Unmarshal([]byte(res[1]), &call); err != nil || call.ID == "" {
			log.Warn("onebot: a malformed relayed call; dropped", "call", res[1])
			continue
		}
		if time.Now().UnixMilli() > call.Deadline {
			log.Warn("onebot: a relayed call past its deadline; dropped", "action", call.Action)
			continue
		}
		// Not ctx's: a drain that ends ctx while the call is on the wire
		// must not give it up (the implementation may have sent the
		// message; the caller would retry it and answer twice). The socket's
		// read collects the answers of calls in flight before it closes.
		cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), time.UnixMilli(call.Deadline))
		r, err := s.call(cctx, call.Action, call.Params)
		cancel()
		if err != nil {
			r = apiResult{Status: "failed", RetCode: -1, Message: err.Error()}
		}
		out, _ := json.Marshal(r)
		bg, bcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		pipe := a.o.Redis.TxPipeline()
		pipe.RPush(bg, a.retKey(call.ID), out)
		pipe.Expire(bg, a.retKey(call.ID), time.Minute)
		if _, err := pipe.Exec(bg); err != nil {
			log.Warn("onebot: relay answer not stored", "err", err)
		}
		bcancel()
	}
}
