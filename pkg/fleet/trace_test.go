package fleet

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// span is one span as the instances exported it.
type span = testenv.Span

// under tells whether s descends from the span root within spans.
func under(spans []span, s span, root string) bool {
	byID := map[string]span{}
	for _, x := range spans {
		byID[x.ID] = x
	}
	for p, ok := s.Parent, true; ok && p != ""; {
		if p == root {
			return true
		}
		var next span
		next, ok = byID[p]
		p = next.Parent
	}
	return false
}

// headerRecorder is a handler that remembers the traceparent of every
// request, then lets next answer it.
type headerRecorder struct {
	mu   sync.Mutex
	seen []string
	next http.Handler
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.URL.Path+" "+r.Header.Get("traceparent"))
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

func (h *headerRecorder) carried(traceID string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, s := range h.seen {
		if strings.Contains(s, "-"+traceID+"-") {
			out = append(out, s)
		}
	}
	return out
}

// A chat turn through nginx is one trace, started by nginx with its
// request id: the instance's HTTP span holds the lock wait, both Redis
// round trips and the LLM call, whose HTTP request carries the trace on
// to the backend; an IM message's webhook, queued job and reply to the
// platform's API are one trace too.
func TestTraceOfATurnThroughNginx(t *testing.T) {
	col := testenv.StartOTLP(t)
	llm := &headerRecorder{next: mockllm.New(mockllm.Options{})}
	llmSrv := httptest.NewServer(llm)
	defer llmSrv.Close()
	tg := &headerRecorder{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true,"result":{"message_id":1,"date":1700000000,"chat":{"id":42,"type":"private"}}}`)
	})}
	tgSrv := httptest.NewServer(tg)
	defer tgSrv.Close()
	f := startFleet(t, []int{1}, false,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+col.URL, "BOT_TELEMETRY_SAMPLE_RATIO=1",
		"BOT_LLM_PROVIDER=openai", "MODEL_ENDPOINT="+llmSrv.URL+"/v1", "BOT_LLM_MODEL=mock-1", "BOT_LLM_RETRIES=0",
		"BOT_IM_TELEGRAM_BOT_TOKEN="+tgToken, "BOT_IM_TELEGRAM_SECRET_TOKEN="+tgSecret, "BOT_IM_TELEGRAM_API_URL="+tgSrv.URL,
		"BOT_QUEUE_BLOCK=100ms")
	f.MustChat(t, "traced", "warm up: load the scripts") // a first call may resend a script in full
	r := f.MustChat(t, "traced", "a traced turn")
	traceID := r.Header.Get("X-Request-Id") // nginx's $request_id is the trace id
	if len(traceID) != 32 {
		t.Fatalf("X-Request-Id %q is not nginx's 32-digit request id", traceID)
	}
	var spans []span
	var server span
	testenv.WaitFor(t, 30*time.Second, "the turn's spans at the receiver", func() bool {
		spans = col.Trace(traceID)
		for _, s := range spans {
			if s.Name == "POST /v1/chat" {
				server = s
			}
		}
		return server.ID != "" && count(spans, "llm.complete") == 1 && count(spans, "HTTP POST") >= 1 && redisSpans(spans) >= 2
	})
	if server.Parent != traceID[:16] {
		t.Errorf("the HTTP span's parent is %q, want nginx's (the request id's first 16 digits)", server.Parent)
	}
	for _, want := range []string{"memory.begin", "llm.complete", "HTTP POST"} {
		if count(spans, want) != 1 {
			t.Errorf("%d %q spans in the trace, want 1: %+v", count(spans, want), want, spans)
		}
	}
	if n := redisSpans(spans); n != 2 {
		t.Errorf("%d Redis round trips in the trace, want the turn's 2: %+v", n, spans)
	}
	for _, s := range spans {
		if s.ID != server.ID && !under(spans, s, server.ID) {
			t.Errorf("span %q is not under the HTTP span", s.Name)
		}
	}
	if got := llm.carried(traceID); len(got) != 1 || !strings.HasPrefix(got[0], "/v1/chat/completions ") {
		t.Errorf("the LLM API got the trace %d times (%v), want once", len(got), got)
	}

	// IM: the webhook through nginx, the job on a worker, the reply.
	status, traceIM := telegramUpdate(t, f, 42, "an IM message to trace")
	if status != 200 || len(traceIM) != 32 {
		t.Fatalf("webhook: %d %q", status, traceIM)
	}
	testenv.WaitFor(t, 30*time.Second, "the reply carrying the webhook's trace", func() bool {
		return len(tg.carried(traceIM)) == 1
	})
	if got := tg.carried(traceIM)[0]; !strings.HasSuffix(strings.Fields(got)[0], "/sendMessage") {
		t.Errorf("the platform call with the trace is %q, want sendMessage", got)
	}
	testenv.WaitFor(t, 30*time.Second, "the IM job's spans", func() bool {
		s := col.Trace(traceIM)
		return count(s, "POST /webhook/:platform") == 1 && count(s, "im.job") == 1 && count(s, "llm.complete") == 1
	})
}

func count(spans []span, name string) int {
	n := 0
	for _, s := range spans {
		if s.Name == name {
			n++
		}
	}
	return n
}

func redisSpans(spans []span) int {
	n := 0
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "redis.") || strings.Contains(s.Name, "evalsha") {
			n++
		}
	}
	return n
}

// telegramUpdate posts a private Telegram message through nginx and
// returns the status and the request id nginx gave it.
func telegramUpdate(t *testing.T, f *testFleet, user int, text string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,"first_name":"U"},`+
		`"chat":{"id":%d,"type":"private"},"date":%d,"text":%q}}`, time.Now().UnixNano()%1e9, 7, user, user, time.Now().Unix(), text)
	req, _ := http.NewRequest("POST", f.Nginx.URL("/webhook/telegram"), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", tgSecret)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Request-Id")
}
