package llm

import (
	"context"
	"fmt"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// FAQ is one canned answer of the Builtin backend. It matches a message when
// the normalized message equals a normalized Match entry or contains a
// normalized Contains entry (see Builtin for the normalization).
type FAQ struct {
	// Match lists phrases the whole message must equal (after normalization).
	Match []string `mapstructure:"match"`
	// Contains lists phrases the message must contain (after normalization).
	Contains []string `mapstructure:"contains"`
	// Reply is the answer, sent verbatim.
	Reply string `mapstructure:"reply"`
	// Confidence is the reply's confidence in [0, 1]; 0 means 0.9.
	Confidence float64 `mapstructure:"confidence"`
}

// DefaultFAQConfidence is the confidence of an FAQ reply whose Confidence is 0.
const DefaultFAQConfidence = 0.9

// DefaultFallbackConfidence is the confidence of a fallback reply when
// BuiltinOptions.FallbackConfidence is 0.
const DefaultFallbackConfidence = 0.5

// DefaultFAQ is the FAQ a Builtin uses when BuiltinOptions.FAQ is nil:
// greetings, thanks, farewells and "who are you".
var DefaultFAQ = []FAQ{
	{
		Match:      []string{"你好", "您好", "hello", "hi"},
		Reply:      "您好，请问有什么可以帮您？",
		Confidence: 0.98,
	},
	{
		Match:      []string{"谢谢", "谢谢你", "多谢", "感谢", "thanks", "thank you", "thx"},
		Reply:      "不客气，很高兴能帮到您！还有其他问题随时问我。",
		Confidence: 0.95,
	},
	{
		Match:      []string{"再见", "拜拜", "回头见", "bye", "goodbye", "see you"},
		Reply:      "再见，祝您一切顺利！需要时随时找我。",
		Confidence: 0.95,
	},
	{
		Match:      []string{"你是谁", "你是什么", "你叫什么", "你叫什么名字", "介绍一下你自己", "who are you", "what are you"},
		Reply:      "我是 botfleet 智能助手：由多个实例组成的聊天机器人集群，对话记忆保存在共享存储中，无论请求落到哪个实例，我都记得我们聊过什么。",
		Confidence: 0.95,
	},
}

// DefaultFallback is the fallback template a Builtin uses when
// BuiltinOptions.Fallback is empty. It echoes the message and shows that the
// conversation's history is remembered.
const DefaultFallback = `收到您的第 {{.Count}} 条消息：「{{.Message}}」。` +
	`{{if .Previous}}您上一条消息是：「{{.Previous}}」。{{end}}` +
	`我目前只能给出简单的内置回复，复杂的问题请稍后再试。`

// FallbackData is what the fallback template of a Builtin is executed with.
type FallbackData struct {
	// Message is the new user message (trimmed).
	Message string
	// Count is how many user messages the conversation has, this one included.
	Count int
	// Previous is the user message before this one, "" if there is none.
	Previous string
	// Turns is how many assistant replies the conversation has so far.
	Turns int
}

// BuiltinOptions configures a Builtin.
type BuiltinOptions struct {
	// FAQ are the canned answers, tried in order; the first match wins.
	// Default (nil): DefaultFAQ. A non-nil empty slice disables canned answers.
	FAQ []FAQ
	// Fallback is a text/template executed with a FallbackData when no FAQ
	// matches. Default (""): DefaultFallback.
	Fallback string
	// FallbackConfidence is the confidence of fallback replies, in [0, 1].
	// Default (0): DefaultFallbackConfidence (0.5).
	FallbackConfidence float64
}

// Builtin is a Backend that needs no network and no key: it answers from an
// FAQ and otherwise with a history-aware fallback template. It is safe for
// concurrent use.
//
// Messages are normalized before matching: surrounding whitespace,
// punctuation and symbols (full-width Chinese ones such as ！？。，～ included)
// are removed, full-width ASCII is folded to ASCII, letters are lower-cased
// and inner runs of whitespace become one space. So "  Hello！！" matches
// "hello".
type Builtin struct {
	faq        []builtinFAQ
	fallback   *template.Template
	confidence float64
}

type builtinFAQ struct {
	match      map[string]struct{}
	contains   []string
	reply      string
	confidence float64
}

// NewBuiltin validates opts and returns a Builtin. Errors name the offending
// field, e.g. "llm.builtin.faq[2].confidence: must be between 0 and 1".
func NewBuiltin(opts BuiltinOptions) (*Builtin, error) {
	faqs := opts.FAQ
	if faqs == nil {
		faqs = DefaultFAQ
	}
	b := &Builtin{faq: make([]builtinFAQ, 0, len(faqs))}
	for i, f := range faqs {
		field := fmt.Sprintf("llm.builtin.faq[%d]", i)
		if f.Confidence < 0 || f.Confidence > 1 {
			return nil, fmt.Errorf("%s.confidence: must be between 0 and 1, got %g", field, f.Confidence)
		}
		if strings.TrimSpace(f.Reply) == "" {
			return nil, fmt.Errorf("%s.reply: must not be empty", field)
		}
		if len(f.Match) == 0 && len(f.Contains) == 0 {
			return nil, fmt.Errorf("%s: needs at least one match or contains entry", field)
		}
		bf := builtinFAQ{
			match:      make(map[string]struct{}, len(f.Match)),
			reply:      f.Reply,
			confidence: f.Confidence,
		}
		if bf.confidence == 0 {
			bf.confidence = DefaultFAQConfidence
		}
		for j, m := range f.Match {
			n := normalize(m)
			if n == "" {
				return nil, fmt.Errorf("%s.match[%d]: %q is empty after normalization", field, j, m)
			}
			bf.match[n] = struct{}{}
		}
		for j, c := range f.Contains {
			n := normalize(c)
			if n == "" {
				return nil, fmt.Errorf("%s.contains[%d]: %q is empty after normalization", field, j, c)
			}
			bf.contains = append(bf.contains, n)
		}
		b.faq = append(b.faq, bf)
	}

	src := opts.Fallback
	if src == "" {
		src = DefaultFallback
	}
	tmpl, err := template.New("fallback").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("llm.builtin.fallback: %w", err)
	}
	// Execute once so references to unknown fields fail now, not per message.
	sample := FallbackData{Message: "m", Count: 2, Previous: "p", Turns: 1}
	if err := tmpl.Execute(&strings.Builder{}, sample); err != nil {
		return nil, fmt.Errorf("llm.builtin.fallback: %w", err)
	}
	b.fallback = tmpl

	if opts.FallbackConfidence < 0 || opts.FallbackConfidence > 1 {
		return nil, fmt.Errorf("llm.builtin.fallback_confidence: must be between 0 and 1, got %g", opts.FallbackConfidence)
	}
	b.confidence = opts.FallbackConfidence
	if b.confidence == 0 {
		b.confidence = DefaultFallbackConfidence
	}
	return b, nil
}

// Name returns "builtin".
func (b *Builtin) Name() string { return "builtin" }

// Complete answers the last user message of req: the first matching FAQ, else
// the fallback template filled in from the conversation. It fails only when
// ctx has ended or req has no user message (an ErrRejected error).
func (b *Builtin) Complete(ctx context.Context, req Request) (Reply, error) {
	if err := ctx.Err(); err != nil {
		return Reply{}, fmt.Errorf("llm.builtin: %w", err)
	}
	last := lastUser(req.Messages)
	if last < 0 {
		return Reply{}, fmt.Errorf("llm.builtin: %w: no user message", ErrRejected)
	}
	msg := req.Messages[last].Content
	reply := Reply{Backend: b.Name(), Model: "builtin", FinishReason: "stop"}

	if f, ok := b.lookup(normalize(msg)); ok {
		reply.Content, reply.Confidence = f.reply, f.confidence
		return reply, streamWords(req.Stream, reply.Content)
	}

	data := FallbackData{Message: strings.TrimSpace(msg)}
	for _, m := range req.Messages[:last] {
		switch m.Role {
		case RoleUser:
			data.Count++
			data.Previous = strings.TrimSpace(m.Content)
		case RoleAssistant:
			data.Turns++
		}
	}
	data.Count++ // this message
	var sb strings.Builder
	if err := b.fallback.Execute(&sb, data); err != nil {
		return Reply{}, fmt.Errorf("llm.builtin: fallback template: %w", err)
	}
	reply.Content, reply.Confidence = sb.String(), b.confidence
	return reply, streamWords(req.Stream, reply.Content)
}

// streamWords sends text to sink word by word (a word and the spaces after
// it; in scripts written without spaces, such as Chinese, a few characters
// at a time), so that streaming works with no model at all.
func streamWords(sink func(string) error, text string) error {
	if sink == nil {
		return nil
	}
	const wide = 4 // characters of a piece in text without spaces
	start, n := 0, 0
	for i, r := range text {
		end := i + utf8.RuneLen(r)
		if r >= 0x2E80 { // CJK and beyond: no spaces between words
			n++
		}
		if r == ' ' && (end == len(text) || text[end] != ' ') || n >= wide {
			if err := sink(text[start:end]); err != nil {
				return err
			}
			start, n = end, 0
		}
	}
	if start < len(text) {
		return sink(text[start:])
	}
	return nil
}

func (b *Builtin) lookup(msg string) (*builtinFAQ, bool) {
	if msg == "" {
		return nil, false
	}
	for i := range b.faq {
		f := &b.faq[i]
		if _, ok := f.match[msg]; ok {
			return f, true
		}
		for _, c := range f.contains {
			if strings.Contains(msg, c) {
				return f, true
			}
		}
	}
	return nil, false
}

// normalize folds full-width ASCII to ASCII, lower-cases, trims surrounding
// whitespace, punctuation and symbols, and collapses inner whitespace runs.
func normalize(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\u3000': // ideographic space
			return ' '
		case r >= '\uFF01' && r <= '\uFF5E': // full-width ASCII variants
			r -= 0xFEE0
		}
		return unicode.ToLower(r)
	}, s)
	s = strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)
	})
	return strings.Join(strings.Fields(s), " ")
}
