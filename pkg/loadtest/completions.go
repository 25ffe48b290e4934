package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/botfleet/botfleet/pkg/jsonstr"
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
	url    string
	auth   string
	model  string
	stream bool // "stream": true (StreamTarget)
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
	return &CompletionsTarget{url: base + CompletionsPath, auth: bearer(token), model: model}, nil
}

// Name implements Target.
func (t *CompletionsTarget) Name() string { return "completions" }

// NewRequest implements Target.
func (t *CompletionsTarget) NewRequest(ctx context.Context, c Call) (*http.Request, error) {
	b := make([]byte, 0, 80+len(t.model)+len(c.Message)+len(c.SessionID))
	b = append(b, `{"model":`...)
	b = jsonstr.Append(b, t.model)
	if t.stream {
		b = append(b, `,"stream":true`...)
	}
	b = append(b, `,"messages":[{"role":"user","content":`...)
	b = jsonstr.Append(b, c.Message)
	b = append(b, `}],"user":`...)
	b = jsonstr.Append(b, c.SessionID)
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
	var c completion
	if err := decodeOK(status, body, &c); err != nil {
		return Reply{}, err
	}
	if len(c.Choices) == 0 || c.Choices[0].Message.Content == nil {
		return Reply{}, errors.New(`completion lacks choices[0].message.content`)
	}
	return Reply{}, nil
}

// StreamTarget is the completions target with "stream": true: the answer
// is OpenAI's server-sent events, chat.completion.chunk objects ending
// with "data: [DONE]". Check reads the whole stream: a stream that ends
// with an {"error": ...} event, or without [DONE], is a failed request
// (cause "decode"); one cut off mid-way fails as the connection did.
type StreamTarget struct {
	CompletionsTarget
}

// NewStreamTarget is NewCompletionsTarget asking for streamed answers.
func NewStreamTarget(baseURL, token, model string) (*StreamTarget, error) {
	t, err := NewCompletionsTarget(baseURL, token, model)
	if err != nil {
		return nil, err
	}
	t.stream = true
	return &StreamTarget{*t}, nil
}

// Name implements Target.
func (t *StreamTarget) Name() string { return "completions-stream" }

// Check implements Target: 200, at least one chunk, no error event, and
// [DONE] last.
func (t *StreamTarget) Check(status int, body []byte) (Reply, error) {
	if status != http.StatusOK {
		return Reply{}, &StatusError{Code: status}
	}
	chunks, done := 0, false
	for line := range strings.SplitSeq(string(body), "\n") {
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var ev struct {
			Error   json.RawMessage `json:"error"`
			Choices []any           `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return Reply{}, fmt.Errorf("stream event %q: %w", data, err)
		}
		if len(ev.Error) > 0 {
			return Reply{}, fmt.Errorf("the stream ended with an error: %s", ev.Error)
		}
		if len(ev.Choices) > 0 {
			chunks++
		}
	}
	if chunks == 0 || !done {
		return Reply{}, fmt.Errorf("stream of %d chunks without [DONE]", chunks)
	}
	return Reply{}, nil
}
