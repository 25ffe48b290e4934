package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is a fake OTLP/HTTP trace collector.
type collector struct {
	mu    sync.Mutex
	spans map[string]string // span name -> hex trace id
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.spans[s.Name] = hex.EncodeToString(s.TraceId)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

func TestTracesReachTheCollector(t *testing.T) {
	r := testenv.StartRedis(t)
	col := &collector{spans: map[string]string{}}
	srv := httptest.NewServer(col)
	defer srv.Close()
	bot := startBot(t, with(redisEnv(r), "OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	res := post(t, bot.url+"/v1/chat", chatBody("traced", "hello"), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if res.status != 200 {
		t.Fatalf("chat: %d %+v", res.status, res.Error)
	}
	if err := bot.stop(); err != nil { // flushes the spans
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	server, ok := col.spans["POST /v1/chat"]
	if !ok || server != traceID {
		t.Fatalf("no server span continuing the caller's trace %s: %v", traceID, col.spans)
	}
	if col.spans["llm.complete"] != traceID {
		t.Fatalf("no llm.complete span in the trace: %v", col.spans)
	}
	redisSpans := 0
	for name, id := range col.spans {
		if strings.Contains(name, "evalsha") && id == traceID {
			redisSpans++
		}
	}
	if redisSpans == 0 {
		t.Fatalf("no Redis span in the trace: %v", col.spans)
	}
}
