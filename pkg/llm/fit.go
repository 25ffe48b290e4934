package llm

import (
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/tiktoken-go/tokenizer/codec"
)

// ErrContextLength is a prompt whose new message (with the system prompt
// and the room for the reply) does not fit the model's context window.
var ErrContextLength = fault.New(http.StatusBadRequest, "context_length_exceeded", "the message does not fit the model's context window")

// Tokens are counted with OpenAI's cl100k_base encoding (the
// github.com/tiktoken-go/tokenizer port of tiktoken, its vocabulary
// compiled in, loaded on first use). Other models' tokenizers differ by a
// few percent; the window is a budget, not an exact science, so a model's
// context_tokens should keep some headroom.
var (
	cl100kOnce sync.Once
	cl100k     *codec.Codec
)

// perMessage is the tokens a chat message costs beyond its content (role
// and separators, as OpenAI counts them), replyPriming those of the reply's
// start.
const (
	perMessage   = 4
	replyPriming = 3
)

// CountTokens counts text's tokens.
func CountTokens(text string) int {
	cl100kOnce.Do(func() { cl100k = codec.NewCl100kBase() })
	n, err := cl100k.Count(text)
	if err != nil {
		return len(text)
	}
	return n
}

// imageTokens is what one image counts for in a prompt: OpenAI's count
// for a high-detail image of up to 1024×1024 pixels (85 + 4 tiles × 170).
const imageTokens = 765

// PromptTokens counts a prompt's tokens, message overheads included.
func PromptTokens(msgs []Message) int {
	n := replyPriming
	for _, m := range msgs {
		n += messageTokens(m)
	}
	return n
}

// messageTokens counts one message's tokens, its overhead and images
// included.
func messageTokens(m Message) int {
	return perMessage + CountTokens(m.Content) + len(m.Images)*imageTokens
}

// withoutImages returns msgs with no message's Images, copying only when
// one has some.
func withoutImages(msgs []Message) []Message {
	for i := range msgs {
		if len(msgs[i].Images) > 0 {
			out := slices.Clone(msgs)
			for j := range out {
				out[j].Images = nil
			}
			return out
		}
	}
	return msgs
}

// fit returns req as the model takes it: without images unless it takes
// image input, and with the oldest history left out, so that the prompt and
// the room for the reply fit the model's context window: the system
// messages and the last message always stay, then the newest history
// that fits. The caller's stored history is not touched. Byte counts bound
// token counts from above, so a prompt that fits by bytes is sent as it is
// without being tokenized.
func (m *model) fit(req Request) (Request, error) {
	if !m.opts.Images {
		req.Messages = withoutImages(req.Messages)
	}
	window := m.opts.ContextTokens
	if window <= 0 || len(req.Messages) == 0 {
		return req, nil
	}
	room := req.Params.MaxTokens
	if room <= 0 {
		room = m.opts.MaxTokens
	}
	budget := window - room - replyPriming
	upper := 0
	for _, msg := range req.Messages {
		upper += perMessage + len(msg.Content) + len(msg.Images)*imageTokens
	}
	if upper <= budget {
		return req, nil
	}
	last := len(req.Messages) - 1
	keep := make([]bool, len(req.Messages))
	keep[last] = true
	used := messageTokens(req.Messages[last])
	for i, msg := range req.Messages[:last] {
		if msg.Role == RoleSystem {
			keep[i] = true
			used += messageTokens(msg)
		}
	}
	if used > budget {
		return req, ErrContextLength.With(fmt.Sprintf(
			"the model %s has a context window of %d tokens: the message and the system prompt take %d, and %d are kept for the reply",
			m.opts.Name, window, used+replyPriming, room))
	}
	for i := last - 1; i >= 0; i-- {
		if keep[i] {
			continue
		}
		n := messageTokens(req.Messages[i])
		if used+n > budget {
			break
		}
		used += n
		keep[i] = true
	}
	out := make([]Message, 0, len(req.Messages))
	for i, msg := range req.Messages {
		if keep[i] {
			out = append(out, msg)
		}
	}
	req.Messages = out
	return req, nil
}
