package im

import (
	"context"
	"fmt"

	"github.com/coder/websocket"
)

// ReadSocket holds conn, the client WebSocket a Link's Run dialed to its
// platform's gateway (DingTalk's Stream, Feishu's long connection): it
// reads at most limit bytes a message, reports the connection up, runs
// keepAlive beside the reads (its cancel ends the connection: a
// keep-alive that saw it die) and hands every message to handle. It
// returns nil when ctx ends, after closing the connection cleanly; else
// the error of the read ("<name> read: …") or of handle that broke it.
// The platform's protocol — the frames, their acknowledgements, the
// pings — stays in keepAlive and handle.
func (c *Conn) ReadSocket(ctx context.Context, conn *websocket.Conn, name string, limit int64,
	keepAlive func(ctx context.Context, cancel context.CancelFunc),
	handle func(ctx context.Context, typ websocket.MessageType, msg []byte) error) error {
	defer conn.CloseNow()
	conn.SetReadLimit(limit)
	c.Connected()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go keepAlive(ctx, cancel)
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				conn.Close(websocket.StatusNormalClosure, "bot stopping")
				return nil
			}
			return fmt.Errorf("%s read: %w", name, err)
		}
		if err := handle(ctx, typ, msg); err != nil {
			return err
		}
	}
}
