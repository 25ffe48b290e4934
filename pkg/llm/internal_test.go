package llm

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	tests := map[string]string{
		"  Hello！！ ":       "hello",
		"你好。":              "你好",
		"【价格】？":            "价格",
		"ＨＥＬＬＯ　ｗｏｒｌｄ":      "hello world",
		"what's   up?\n":   "what's up",
		"谢谢😊":              "谢谢",
		"~~~你好~~~":         "你好",
		"！？。，":             "",
		"a, b":             "a, b",
		"\t Who Are You? ": "who are you",
	}
	for in, want := range tests {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	hdr := func(kv ...string) *http.Response {
		r := &http.Response{Header: http.Header{}}
		for i := 0; i < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		return r
	}
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		resp *http.Response
		min  time.Duration
		max  time.Duration
	}{
		{nil, DefaultRetryAfter, DefaultRetryAfter},
		{hdr(), DefaultRetryAfter, DefaultRetryAfter},
		{hdr("Retry-After", "7"), 7 * time.Second, 7 * time.Second},
		{hdr("Retry-After", "0.5"), 500 * time.Millisecond, 500 * time.Millisecond},
		{hdr("Retry-After-Ms", "250", "Retry-After", "7"), 250 * time.Millisecond, 250 * time.Millisecond},
		{hdr("Retry-After", "junk"), DefaultRetryAfter, DefaultRetryAfter},
		{hdr("Retry-After", "-3"), DefaultRetryAfter, DefaultRetryAfter},
		{hdr("Retry-After", future), 80 * time.Second, 90 * time.Second},
	}
	for i, tt := range tests {
		if got := retryAfter(tt.resp); got < tt.min || got > tt.max {
			t.Errorf("%d: retryAfter = %v, want in [%v, %v]", i, got, tt.min, tt.max)
		}
	}
}

func TestConfidence(t *testing.T) {
	for reason, want := range map[string]float64{
		"stop": 0.9, "length": 0.6, "content_filter": 0.2, "tool_calls": 0.5, "": 0.5,
	} {
		if got := confidence(wireChoice{FinishReason: reason}); got != want {
			t.Errorf("finish_reason %q: confidence %v, want %v", reason, got, want)
		}
	}
	var c wireChoice
	c.FinishReason = "length"
	c.Logprobs.Content = logprobs(0, 0)
	if got := confidence(c); got != 1 {
		t.Errorf("logprobs 0,0: confidence %v, want 1", got)
	}
	c.Logprobs.Content = logprobs(0.3) // bogus positive logprob
	if got := confidence(c); got != 1 {
		t.Errorf("logprob 0.3: confidence %v, want clamped to 1", got)
	}
	c.Logprobs.Content = logprobs(-9999)
	if got := confidence(c); got < 0 || got > 1e-9 {
		t.Errorf("logprob -9999: confidence %v, want ~0", got)
	}
}

func logprobs(lps ...float64) []wireLogprob {
	out := make([]wireLogprob, len(lps))
	for i, lp := range lps {
		out[i].Logprob = lp
	}
	return out
}

func TestRetryRules(t *testing.T) {
	res := func(status int, kv ...string) *http.Response {
		r := &http.Response{StatusCode: status, Header: http.Header{}}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		return r
	}
	for _, c := range []struct {
		res  *http.Response
		want bool
	}{
		{nil, true}, {res(503), true}, {res(429), true}, {res(408), true}, {res(409), true},
		{res(400), false}, {res(503, "X-Should-Retry", "false"), false}, {res(400, "X-Should-Retry", "true"), true},
	} {
		if got := retryable(c.res); got != c.want {
			t.Errorf("retryable(%+v) = %v, want %v", c.res, got, c.want)
		}
	}
	if d, ok := retryDelay(res(429, "Retry-After-Ms", "250"), 0); d != 250*time.Millisecond || !ok {
		t.Errorf("Retry-After-Ms 250: %v %v", d, ok)
	}
	if _, ok := retryDelay(res(429, "Retry-After", "300"), 0); ok {
		t.Error("Retry-After 300 s (over 2 min) is waited for, want no retry")
	}
	for attempt, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if d, ok := retryDelay(res(503), attempt); !ok || d > want || d < want*3/4 {
			t.Errorf("attempt %d: backoff %v %v, want %v less up to a quarter", attempt, d, ok, want)
		}
	}
}

// TestEncodeBody: the hand-appended body means what json.Marshal's does.
func TestEncodeBody(t *testing.T) {
	temp, topP := 0.7, 1e-7
	for _, p := range []wireParams{
		{Model: "m", Messages: []wireMessage{{Role: "user", Content: "hi"}}},
		{Model: `we"ird\`, Messages: []wireMessage{
			{Role: "system", Content: "line\nbreak\ttab \x01 \"quoted\" <b>&</b>"},
			{Role: "user", Content: "你好 \u2028 \xff bad utf-8"}, {Role: "assistant", Content: ""},
		}, Temperature: &temp, TopP: &topP, MaxTokens: 42, Stop: []string{"\n\n", "END"}, Logprobs: true,
			Stream: true, StreamOptions: &wireStreamOptions{IncludeUsage: true}},
		{Model: "m", Messages: []wirePartsMessage{{Role: "user", Content: []wirePart{{Type: "text", Text: "img"}}}}},
	} {
		got, err := p.encode()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(p)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("encode gave invalid JSON %s: %v", got, err)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("encode:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
}

// BenchmarkEncodeBody is a history-100 request body, appended by hand and
// by json.Marshal.
func BenchmarkEncodeBody(b *testing.B) {
	msgs := []wireMessage{{Role: RoleSystem, Content: "be brief"}}
	for i := range 50 {
		msgs = append(msgs, wireMessage{Role: RoleUser, Content: "question " + strconv.Itoa(i) + " about the fleet and its memory"},
			wireMessage{Role: RoleAssistant, Content: "answer " + strconv.Itoa(i) + ": the fleet keeps memory in Redis"})
	}
	p := wireParams{Model: "mock-1", Messages: msgs}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = p.encode()
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(p)
		}
	})
}
