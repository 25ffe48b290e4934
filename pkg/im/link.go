package im

import (
	"context"
	"errors"
	"log/slog"
)

// A Link is one platform's long connection (im.<platform>.mode: stream):
// DingTalk's Stream gateway, Feishu's event WebSocket, a OneBot
// WebSocket, Telegram's getUpdates. Links runs it, under the platform's
// connection policy, and reconnects it.
type Link interface {
	// Platform is the link's platform, one of Platforms.
	Platform() string
	// Run connects, calls c.Connected once the connection is up, and
	// hands every event to c.Accept, acknowledging it to the platform
	// only when Accept returned without a temporary error (the job is
	// queued: an event is never acknowledged and then lost). It returns
	// nil when ctx ends (after closing the connection cleanly), or the
	// error that broke the connection; Links reconnects after a backoff.
	Run(ctx context.Context, c *Conn) error
}

// Inlet takes the events links receive; *Pipeline is one.
type Inlet interface {
	Accept(ctx context.Context, platform string, body []byte) (string, error)
}

// Conn is what a Link's Run works with: the pipeline's entry and the
// connection's state.
type Conn struct {
	platform string
	inlet    Inlet
	log      *slog.Logger
	up       func()
	down     func()
	counted  func(outcome string)
}

// Accept hands one event body to the pipeline (see Pipeline.Accept): an
// *Error is an event to acknowledge and drop (logged here), any other
// error a temporary failure: do not acknowledge it.
func (c *Conn) Accept(ctx context.Context, body []byte) (string, error) {
	outcome, err := c.inlet.Accept(ctx, c.platform, body)
	if err != nil {
		if !IsTemporary(err) {
			c.log.WarnContext(ctx, "im: event refused; acknowledged and dropped", "platform", c.platform, "err", err, "body", truncate(body, 200))
			c.counted(OutcomeRejected)
			return OutcomeRejected, err
		}
		c.log.WarnContext(ctx, "im: event not queued; left unacknowledged for the platform to redeliver", "platform", c.platform, "err", err)
		c.counted("failed")
		return "", err
	}
	c.counted(outcome)
	return outcome, nil
}

// Connected reports that the connection is up.
func (c *Conn) Connected() { c.up() }

// Disconnected reports that a connection the platform opened (an incoming
// one, see Links.Incoming) ended; a Link's Run reports it by returning.
func (c *Conn) Disconnected() {
	if c.down != nil {
		c.down()
	}
}

// Logger is the link's logger.
func (c *Conn) Logger() *slog.Logger { return c.log }

// IsTemporary reports whether an Accept error is a temporary failure (do
// not acknowledge the event) rather than a refused event.
func IsTemporary(err error) bool {
	var bad *Error
	return err != nil && !errors.As(err, &bad)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
