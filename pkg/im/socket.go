package im

import (
	"context"
	"fmt"

	"github.com/coder/websocket"
)

// ReadSocket holds conn, the client WebSocket a Link's Run dialed to its
// platform's gateway (DingTalk's Stream, Feishu's long connection): it
// reads at most limit bytes a message, reports the connection up, runs
// keepAlive beside the reads (its dead ends the connection with the
// keep-alive's error: a ping that saw it die) and hands every message to
// handle. It returns nil when ctx ends, after closing the connection
// cleanly; else the error that broke it: the keep-alive's ("<name>
// keep-alive: …"), the read's ("<name> read: …") or handle's.
// The platform's protocol — the frames, their acknowledgements, the
// pings — stays in keepAlive and handle.
func (c *Conn) ReadSocket(ctx context.Context, conn *websocket.Conn, name string, limit int64,
	keepAlive func(ctx context.Context, dead func(error)),
	handle func(ctx context.Context, typ websocket.MessageType, msg []byte) error) error {
	defer conn.CloseNow()
	conn.SetReadLimit(limit)
	c.Connected()
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go keepAlive(ctx, func(err error) {
		cancel(err)
		conn.CloseNow()
	})
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			switch {
			case parent.Err() != nil:
				conn.Close(websocket.StatusNormalClosure, "bot stopping")
				return nil
			case ctx.Err() != nil:
				return fmt.Errorf("%s keep-alive: %w", name, context.Cause(ctx))
			}
			return fmt.Errorf("%s read: %w", name, err)
		}
		if err := handle(ctx, typ, msg); err != nil {
			return err
		}
	}
}
