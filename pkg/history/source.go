package history

import (
	"context"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/memory"
)

// ChatSource reads the conversations of the HTTP API's default tenant
// through svc (chat.Service.History resolves the key): the chat target's
// (POST /v1/chat, the session id names the conversation), or with byUser
// the completions target's (its "user" field names it).
func ChatSource(svc *chat.Service, byUser bool) Source {
	return func(ctx context.Context, conversation string) ([]memory.Entry, error) {
		r := chat.Request{SessionID: conversation}
		if byUser {
			r = chat.Request{UserID: conversation}
		}
		return svc.History(ctx, r)
	}
}
