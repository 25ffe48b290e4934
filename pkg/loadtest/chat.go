package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/botfleet/botfleet/pkg/jsonstr"
)

// ChatPath is the chat target's endpoint.
const ChatPath = "/v1/chat"

// ChatTarget drives botfleet's chat API: POST /v1/chat with
// {"message","session_id"}, expecting 200 and a JSON reply whose "turn" is the
// turn's number in the conversation.
type ChatTarget struct {
	url  string
	auth string
}

// NewChatTarget returns the chat target of the service at baseURL (scheme,
// host and an optional path prefix), sending "Authorization: Bearer token"
// when token is not empty.
func NewChatTarget(baseURL, token string) (*ChatTarget, error) {
	base, err := serviceURL(baseURL)
	if err != nil {
		return nil, err
	}
	return &ChatTarget{url: base + ChatPath, auth: bearer(token)}, nil
}

// bearer is the Authorization header that sends token, none when it is empty.
func bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// Name implements Target.
func (t *ChatTarget) Name() string { return "chat" }

// NewRequest implements Target.
func (t *ChatTarget) NewRequest(ctx context.Context, c Call) (*http.Request, error) {
	b := make([]byte, 0, 40+len(c.Message)+len(c.SessionID))
	b = append(b, `{"message":`...)
	b = jsonstr.Append(b, c.Message)
	b = append(b, `,"session_id":`...)
	b = jsonstr.Append(b, c.SessionID)
	b = append(b, '}')
	return postJSON(ctx, t.url, t.auth, b)
}

// postJSON is a POST of the JSON body b to url, with auth as the
// Authorization header when set.
func postJSON(ctx context.Context, url, auth string, b []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	if auth != "" {
		req.Header["Authorization"] = []string{auth}
	}
	return req, nil
}

// decodeOK decodes the JSON answer body into v when status is 200, and
// is a *StatusError otherwise.
func decodeOK(status int, body []byte, v any) error {
	if status != http.StatusOK {
		return &StatusError{Code: status}
	}
	return json.Unmarshal(body, v)
}

// chatReply is the part of the chat API's answer the target checks.
type chatReply struct {
	Reply     *string `json:"reply"`
	SessionID string  `json:"session_id"`
	Turn      int     `json:"turn"`
}

// Check implements Target: 200 with a reply and a positive turn.
func (t *ChatTarget) Check(status int, body []byte) (Reply, error) {
	var r chatReply
	if err := decodeOK(status, body, &r); err != nil {
		return Reply{}, err
	}
	if r.Reply == nil || r.Turn < 1 {
		return Reply{}, errors.New(`answer lacks "reply" or a positive "turn"`)
	}
	return Reply{SessionID: r.SessionID, Turn: r.Turn}, nil
}
