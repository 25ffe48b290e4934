package im

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/redis/go-redis/v9"
)

// sendingKey is the send lease's key beside a reply's "sent" key.
func sendingKey(sentKey string) string {
	return strings.Replace(sentKey, ":im:sent:", ":im:sending:", 1)
}

// claimSend takes the right to send the reply: the send lease, as owner.
// When another worker holds it — sending right now, or dead mid-send — it
// waits until that worker records "sent" (done is true) or its lease ends
// (and takes it), within the job's deadline.
func (p *Pipeline) claimSend(ctx context.Context, sentKey, owner string) (done bool, err error) {
	for {
		ok, _, err := p.leases.Acquire(ctx, sendingKey(sentKey), owner, p.opts.SendLease)
		if err != nil {
			if ctx.Err() != nil {
				return false, ErrSendInProgress
			}
			return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		// The holder records "sent" before it releases: look after taking it too.
		state, err := p.rdb.Get(ctx, sentKey).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if state == "sent" {
			if ok {
				_ = p.leases.Release(ctx, sendingKey(sentKey), owner)
			}
			return true, nil
		}
		if ok {
			return false, nil
		}
		if !pause.For(ctx, 200*time.Millisecond) {
			return false, ErrSendInProgress
		}
	}
}

// recordSent records that the reply to m went out ("sent" for DedupTTL)
// and releases owner's send lease.
func (p *Pipeline) recordSent(ctx context.Context, m *Message, sentKey, owner string) {
	p.countReply(m.Platform, "sent")
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := p.rdb.Set(wctx, sentKey, "sent", p.opts.DedupTTL).Err(); err != nil {
		p.log.Warn("im: reply sent but not recorded; a retry of this job could send it again", "event", m.Key(), "err", err)
	}
	_ = p.leases.Release(wctx, sendingKey(sentKey), owner)
}
