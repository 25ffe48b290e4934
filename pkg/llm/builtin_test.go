package llm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/llm"
)

func user(s string) llm.Message      { return llm.Message{Role: llm.RoleUser, Content: s} }
func assistant(s string) llm.Message { return llm.Message{Role: llm.RoleAssistant, Content: s} }
func system(s string) llm.Message    { return llm.Message{Role: llm.RoleSystem, Content: s} }

func newBuiltin(t *testing.T, opts llm.BuiltinOptions) *llm.Builtin {
	t.Helper()
	b, err := llm.NewBuiltin(opts)
	if err != nil {
		t.Fatalf("NewBuiltin: %v", err)
	}
	return b
}

func complete(t *testing.T, b llm.Backend, msgs ...llm.Message) llm.Reply {
	t.Helper()
	r, err := b.Complete(context.Background(), llm.Request{Messages: msgs})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	return r
}

func TestBuiltinDefaultFAQGreeting(t *testing.T) {
	b := newBuiltin(t, llm.BuiltinOptions{})
	if b.Name() != "builtin" {
		t.Errorf("Name() = %q, want builtin", b.Name())
	}
	for _, msg := range []string{"你好", "  你好！！ ", "您好。", "Hello", "HI?", "hello~", "ｈｅｌｌｏ！", "\u3000你好～"} {
		r := complete(t, b, system("be nice"), user(msg))
		if r.Content != "您好，请问有什么可以帮您？" || r.Confidence != 0.98 {
			t.Errorf("%q: got %q (%v), want the greeting with confidence 0.98", msg, r.Content, r.Confidence)
		}
		if r.Backend != "builtin" || r.Model != "builtin" {
			t.Errorf("%q: Backend/Model = %q/%q, want builtin/builtin", msg, r.Backend, r.Model)
		}
	}
	// Equality, not substring: a longer message is not a greeting.
	r := complete(t, b, user("你好，我想查询订单"))
	if strings.Contains(r.Content, "请问有什么可以帮您") {
		t.Errorf("long message matched the greeting: %q", r.Content)
	}
	for _, msg := range []string{"谢谢！", "Thanks", "再见", "bye!", "你是谁？", "Who are you?"} {
		r := complete(t, b, user(msg))
		if r.Confidence < 0.9 || strings.Contains(r.Content, "收到") {
			t.Errorf("%q: got %q (%v), want a default FAQ answer", msg, r.Content, r.Confidence)
		}
	}
	if r := complete(t, b, user("who are you")); !strings.Contains(r.Content, "botfleet") {
		t.Errorf("who are you: %q does not mention botfleet", r.Content)
	}
}

func TestBuiltinFAQMatching(t *testing.T) {
	b := newBuiltin(t, llm.BuiltinOptions{FAQ: []llm.FAQ{
		{Match: []string{"价格？"}, Reply: "price", Confidence: 0.8},
		{Contains: []string{"退款"}, Reply: "refund"}, // default confidence
		{Contains: []string{"退款流程"}, Reply: "never: the first match wins"},
		{Match: []string{"Opening   Hours"}, Reply: "hours", Confidence: 1},
	}})
	tests := []struct {
		msg, want string
		conf      float64
	}{
		{"价格", "price", 0.8},
		{"【价格】", "price", 0.8},
		{"请问退款流程是怎样的？", "refund", 0.9},
		{"opening hours!", "hours", 1},
		{" OPENING\t hours ", "hours", 1},
	}
	for _, tt := range tests {
		r := complete(t, b, user(tt.msg))
		if r.Content != tt.want || r.Confidence != tt.conf {
			t.Errorf("%q: got %q (%v), want %q (%v)", tt.msg, r.Content, r.Confidence, tt.want, tt.conf)
		}
	}
	// A custom FAQ replaces the defaults.
	if r := complete(t, b, user("你好")); r.Confidence != 0.5 {
		t.Errorf("你好 with a custom FAQ: got %q (%v), want the fallback", r.Content, r.Confidence)
	}
	// A non-nil empty FAQ disables canned answers.
	none := newBuiltin(t, llm.BuiltinOptions{FAQ: []llm.FAQ{}})
	if r := complete(t, none, user("你好")); r.Confidence != 0.5 {
		t.Errorf("你好 with no FAQ: got %q (%v), want the fallback", r.Content, r.Confidence)
	}
}

func TestBuiltinFallbackUsesHistory(t *testing.T) {
	b := newBuiltin(t, llm.BuiltinOptions{})
	r := complete(t, b, user("今天天气怎么样"))
	if !strings.Contains(r.Content, "第 1 条") || !strings.Contains(r.Content, "今天天气怎么样") {
		t.Errorf("first turn: %q lacks count 1 or the message", r.Content)
	}
	if strings.Contains(r.Content, "上一条") {
		t.Errorf("first turn: %q mentions a previous message", r.Content)
	}
	if r.Confidence != llm.DefaultFallbackConfidence {
		t.Errorf("confidence = %v, want %v", r.Confidence, llm.DefaultFallbackConfidence)
	}

	r = complete(t, b,
		system("you are a bot"),
		user("我叫小明"), assistant("好的"),
		user("今天天气怎么样"), assistant("不知道"),
		user("  我叫什么名字？ "))
	for _, want := range []string{"第 3 条", "「我叫什么名字？」", "「今天天气怎么样」"} {
		if !strings.Contains(r.Content, want) {
			t.Errorf("third turn: %q does not contain %q", r.Content, want)
		}
	}

	custom := newBuiltin(t, llm.BuiltinOptions{
		Fallback:           "{{.Count}}|{{.Turns}}|{{.Previous}}|{{.Message}}",
		FallbackConfidence: 0.3,
	})
	r = complete(t, custom, user("a"), assistant("x"), user("b"), assistant("y"), user("c"))
	if r.Content != "3|2|b|c" || r.Confidence != 0.3 {
		t.Errorf("custom fallback: got %q (%v), want 3|2|b|c (0.3)", r.Content, r.Confidence)
	}
}

func TestBuiltinValidation(t *testing.T) {
	tests := []struct {
		name string
		opts llm.BuiltinOptions
		want string
	}{
		{"faq confidence", llm.BuiltinOptions{FAQ: []llm.FAQ{
			{Match: []string{"a"}, Reply: "a"},
			{Match: []string{"b"}, Reply: "b"},
			{Match: []string{"c"}, Reply: "c", Confidence: 1.5},
		}}, "llm.builtin.faq[2].confidence: must be between 0 and 1"},
		{"negative confidence", llm.BuiltinOptions{FAQ: []llm.FAQ{{Match: []string{"a"}, Reply: "a", Confidence: -0.1}}},
			"llm.builtin.faq[0].confidence"},
		{"empty reply", llm.BuiltinOptions{FAQ: []llm.FAQ{{Match: []string{"a"}}}}, "llm.builtin.faq[0].reply"},
		{"no patterns", llm.BuiltinOptions{FAQ: []llm.FAQ{{Reply: "a"}}}, "llm.builtin.faq[0]: needs"},
		{"punctuation-only match", llm.BuiltinOptions{FAQ: []llm.FAQ{{Match: []string{"a", "？！"}, Reply: "a"}}},
			"llm.builtin.faq[0].match[1]"},
		{"empty contains", llm.BuiltinOptions{FAQ: []llm.FAQ{{Contains: []string{" "}, Reply: "a"}}},
			"llm.builtin.faq[0].contains[0]"},
		{"template syntax", llm.BuiltinOptions{Fallback: "{{.Message"}, "llm.builtin.fallback:"},
		{"template field", llm.BuiltinOptions{Fallback: "{{.Nope}}"}, "llm.builtin.fallback:"},
		{"fallback confidence", llm.BuiltinOptions{FallbackConfidence: 2}, "llm.builtin.fallback_confidence: must be between 0 and 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := llm.NewBuiltin(tt.opts)
			if err == nil {
				t.Fatalf("NewBuiltin succeeded (%v), want error containing %q", b, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestBuiltinErrors(t *testing.T) {
	b := newBuiltin(t, llm.BuiltinOptions{})
	_, err := b.Complete(context.Background(), llm.Request{Messages: []llm.Message{system("s")}})
	if !errors.Is(err, llm.ErrRejected) {
		t.Errorf("no user message: err = %v, want ErrRejected", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = b.Complete(ctx, llm.Request{Messages: []llm.Message{user("hi")}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v, want context.Canceled", err)
	}
}
