package im

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/lease"
	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/redis/go-redis/v9"
)

// Editor is an adapter whose platform lets the bot edit a message it
// sent, so that a reply appears and grows as the model streams it
// (Options.StreamReplies): Telegram (editMessageText), Feishu (a card
// updated with PATCH).
type Editor interface {
	Adapter
	// Begin sends text as the reply's message and returns the message's id.
	Begin(ctx context.Context, m *Message, text string) (string, error)
	// Edit replaces the text of the reply's message id.
	Edit(ctx context.Context, m *Message, id, text string) error
	// EditEvery is the least time between two edits of one message: the
	// platform's rate limit.
	EditEvery() time.Duration
	// MaxText is the longest text one message takes.
	MaxText() int
}

// Finisher is an Editor whose message has a streaming state to end — a
// DingTalk AI card (isFinalize), a Feishu CardKit card (streaming_mode
// off). handleStreamed calls exactly one of its methods, once, at the end
// of a reply whose message it made or found in the draft.
type Finisher interface {
	Editor
	// Finish shows text, the whole reply (or its first MaxText), as the
	// message's final content and ends its streaming.
	Finish(ctx context.Context, m *Message, id, text string) error
	// Fail ends the streaming of a message whose turn failed for good;
	// text is what the message shows so far.
	Fail(ctx context.Context, m *Message, id, text string) error
}

// handleStreamed answers a job whose reply streams into one message:
//
//  1. Take the send lease first (renewed while the turn runs): the reply's
//     message is made by one worker at a time.
//  2. bf:im:draft:<platform>:<event> holds the message's id once it is
//     made, so that a job reclaimed mid-stream (its instance died) edits
//     the same message instead of starting a second one.
//  3. Stream the turn: the text so far goes to the message at most every
//     EditEvery; a start event after pieces (the turn runs again) starts
//     the text over in the same message.
//  4. Finalize once: the whole reply in the message (the parts past
//     MaxText as plain replies after it) — a Finisher's Finish, else an Edit —
//     then "sent" and the lease released. A turn that fails for good ends
//     a Finisher's message with Fail; one that fails for now (retried) or
//     loses the lease leaves it streaming for the next worker to go on.
func (p *Pipeline) handleStreamed(ctx context.Context, job *queue.Job, m *Message, ed Editor, sentKey string) error {
	owner := lease.NewOwner()
	done, err := p.claimSend(ctx, sentKey, owner)
	if err != nil || done {
		if done {
			p.countReply(m.Platform, "already_sent")
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.keepSendLease(ctx, sendingKey(sentKey), owner, cancel)
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = p.leases.Release(rctx, sendingKey(sentKey), owner)
		rcancel()
	}()
	draftKey := p.opts.Prefix + ":im:draft:" + m.Key()
	id, err := p.rdb.Get(ctx, draftKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s := &draft{ctx: ctx, p: p, m: m, ed: ed, key: draftKey, id: id}
	req := m.chatRequest()
	req.Stream = s.event
	res, err := p.chat.Turn(ctx, req)
	if err != nil {
		if !fault.Temporary(err) {
			s.fail()
			return queue.Permanent(err)
		}
		return err
	}
	parts := Split(res.Reply, ed.MaxText())
	if err := s.finish(ctx, parts[0]); err != nil {
		p.countReply(m.Platform, "failed")
		return fmt.Errorf("im: finish the streamed reply on %s: %w", m.Platform, err)
	}
	for i, part := range parts[1:] {
		// Each part past the message is a message of its own, sent as the
		// platform's plain reply to an event of its own (Feishu's uuid, an
		// AI card's outTrackId are the event's: they would name the first).
		mp := *m
		mp.EventID = m.EventID + "#part" + strconv.Itoa(i+1)
		if err := ed.Send(ctx, &mp, part); err != nil {
			p.countReply(m.Platform, "failed")
			return fmt.Errorf("im: send to %s: %w", m.Platform, err)
		}
	}
	p.recordSent(ctx, m, sentKey, owner)
	p.log.Info("im: replied, streamed", "platform", m.Platform, "event", m.EventID, "message", s.id, "edits", s.edits, "turn", res.Turn, "deliveries", job.Deliveries)
	return nil
}

// keepSendLease renews the send lease every SendLease/3 while the turn
// runs; losing it ends the turn (cancel), so that two workers never edit.
func (p *Pipeline) keepSendLease(ctx context.Context, key, owner string, cancel context.CancelFunc) {
	pause.Every(ctx, p.opts.SendLease/3, func() bool {
		if err := p.leases.Renew(ctx, key, owner, p.opts.SendLease); errors.Is(err, lease.ErrNotHeld) {
			p.log.Warn("im: send lease lost during a streamed reply; leaving it to the other worker", "key", key)
			cancel()
			return false
		}
		return true
	})
}

// draft is a streamed reply's message as it grows.
type draft struct {
	ctx    context.Context // the job's
	p      *Pipeline
	m      *Message
	ed     Editor
	key    string
	id     string // the message, once made
	text   string // the reply so far
	shown  string // what the message shows
	last   time.Time
	edits  int
	broken bool // an edit failed: the final show retries it
}

// event takes one event of the streamed turn.
func (d *draft) event(e chat.Event) error {
	switch e.Kind {
	case "start":
		d.text = "" // the turn begins (again): its pieces start over
	case "piece":
		d.text += e.Text
		if time.Since(d.last) >= d.ed.EditEvery() && len([]rune(d.text)) <= d.ed.MaxText() {
			ctx, cancel := context.WithTimeout(d.ctx, DefaultSendTimeout)
			defer cancel()
			if err := d.show(ctx, d.text); err != nil {
				d.broken = true // shown at the end; the stream goes on
				d.p.log.Warn("im: a streamed edit failed", "platform", d.m.Platform, "event", d.m.EventID, "err", err)
			}
		}
	}
	return nil
}

// finish shows the reply's first part for good: a Finisher's message is
// made first when the turn gave no piece to show, then finished; another
// Editor's gets its last edit. The platform's rate limit holds for the
// final call too.
func (d *draft) finish(ctx context.Context, text string) error {
	fin, finishes := d.ed.(Finisher)
	if finishes && d.id == "" {
		if err := d.show(ctx, text); err != nil {
			return err
		}
	}
	if wait := time.Until(d.last.Add(d.ed.EditEvery())); d.id != "" && wait > 0 {
		if !pause.For(ctx, wait) {
			return ctx.Err()
		}
	}
	if !finishes {
		return d.show(ctx, text)
	}
	d.last = time.Now()
	return fin.Finish(ctx, d.m, d.id, text)
}

// fail ends a Finisher's message whose turn failed for good, when there
// is one; a failure to say so is only logged (the turn's error is the one
// that counts).
func (d *draft) fail() {
	fin, ok := d.ed.(Finisher)
	if !ok || d.id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), DefaultSendTimeout)
	defer cancel()
	if err := fin.Fail(ctx, d.m, d.id, d.shown); err != nil {
		d.p.log.Warn("im: could not mark a streamed reply failed", "platform", d.m.Platform, "event", d.m.EventID, "err", err)
	}
}

// show makes the message show text: it makes the message the first time
// (and records its id), else edits it when the text changed.
func (d *draft) show(ctx context.Context, text string) error {
	if text == "" || (text == d.shown && !d.broken) {
		return nil
	}
	d.last = time.Now()
	if d.id == "" {
		id, err := d.ed.Begin(ctx, d.m, text)
		if err != nil {
			return err
		}
		d.id, d.shown = id, text
		if err := d.p.rdb.Set(context.WithoutCancel(ctx), d.key, id, d.p.opts.DedupTTL).Err(); err != nil {
			return fmt.Errorf("%w: record the reply's message: %w", ErrUnavailable, err)
		}
		return nil
	}
	if err := d.ed.Edit(ctx, d.m, d.id, text); err != nil {
		return err
	}
	d.shown, d.broken = text, false
	d.edits++
	return nil
}
