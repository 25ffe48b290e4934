package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// CompletionsPath is the completions target's endpoint.
const CompletionsPath = "/v1/chat/completions"

// DefaultModel is the model the completions target asks for by default
// (mockllm's).
const DefaultModel = "mock-1"

// CompletionsTarget drives an OpenAI-compatible chat completions endpoint:
// POST /v1/chat/completions with {"model", "messages": [{"role": "user",
// "content"}], "user": <session id>}, expecting 200 and a JSON completion
// whose choices[0].message.content is a string. The wire format carries no
// turn number, so continuity is not checked (Reply.Turn is 0). It drives the
// bot's OpenAI-compatible endpoint (the conversation key is the "user" field)
// as well as an OpenAI-compatible backend such as mockllm directly.
type CompletionsTarget struct {
	url   string
	auth  string
	model string
}

// NewCompletionsTarget returns the completions target of the service at
// baseURL (scheme, host and an optional path prefix; a trailing "/v1" is
// accepted, as OpenAI clients spell base URLs), asking for model (DefaultModel
// when empty) and sending "Authorization: Bearer token" when token is not
// empty.
func NewCompletionsTarget(baseURL, token, model string) (*CompletionsTarget, error) {
	base, err := serviceURL(baseURL)
	if err != nil {
		return nil, err
	}
	base = strings.TrimSuffix(base, "/v1")
	if model == "" {
		model = DefaultModel
	}
	t := &CompletionsTarget{url: base + CompletionsPath, model: model}
	if token != "" {
		t.auth = "Bearer " + token
	}
	return t, nil
}

// Name implements Target.
func (t *CompletionsTarget) Name() string { return "completions" }

// NewRequest implements Target.
func (t *CompletionsTarget) NewRequest(ctx context.Context, c Call) (*http.Request, error) {
	b := make([]byte, 0, 80+len(t.model)+len(c.Message)+len(c.SessionID))
	b = append(b, `{"model":`...)
	b = appendJSONString(b, t.model)
	b = append(b, `,"messages":[{"role":"user","content":`...)
	b = appendJSONString(b, c.Message)
	b = append(b, `}],"user":`...)
	b = appendJSONString(b, c.SessionID)
	b = append(b, '}')
	return postJSON(ctx, t.url, t.auth, b)
}

// completion is the part of a chat completion the target checks.
type completion struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

// Check implements Target: 200 with a string choices[0].message.content.
func (t *CompletionsTarget) Check(status int, body []byte) (Reply, error) {
	if status != http.StatusOK {
		return Reply{}, &StatusError{Code: status}
	}
	var c completion
	if err := json.Unmarshal(body, &c); err != nil {
		return Reply{}, err
	}
	if len(c.Choices) == 0 || c.Choices[0].Message.Content == nil {
		return Reply{}, errors.New(`completion lacks choices[0].message.content`)
	}
	return Reply{}, nil
}
