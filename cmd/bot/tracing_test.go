package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

func TestTracesReachTheCollector(t *testing.T) {
	r := testenv.StartRedis(t)
	col := testenv.StartOTLP(t)
	bot := startBot(t, with(redisEnv(r), "OTEL_EXPORTER_OTLP_ENDPOINT", col.URL))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	res := post(t, bot.url+"/v1/chat", chatBody("traced", "hello"), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if res.status != 200 {
		t.Fatalf("chat: %d %+v", res.status, res.Error)
	}
	if err := bot.stop(); err != nil { // flushes the spans
		t.Fatal(err)
	}
	spans := map[string]string{} // span name -> hex trace id
	for _, s := range col.Spans() {
		spans[s.Name] = s.Trace
	}
	server, ok := spans["POST /v1/chat"]
	if !ok || server != traceID {
		t.Fatalf("no server span continuing the caller's trace %s: %v", traceID, spans)
	}
	if spans["llm.complete"] != traceID {
		t.Fatalf("no llm.complete span in the trace: %v", spans)
	}
	redisSpans := 0
	for name, id := range spans {
		if strings.Contains(name, "evalsha") && id == traceID {
			redisSpans++
		}
	}
	if redisSpans == 0 {
		t.Fatalf("no Redis span in the trace: %v", spans)
	}
}

// A chat turn's log line carries the trace id (and span id) of the span
// exported for it: the server's own trace, no traceparent sent.
func TestTracedLogLinesCarryTheTraceID(t *testing.T) {
	r := testenv.StartRedis(t)
	col := testenv.StartOTLP(t)
	bot := startBot(t, with(redisEnv(r), "OTEL_EXPORTER_OTLP_ENDPOINT", col.URL, "BOT_LOG_LEVEL", "info", "BOT_LOG_ACCESS_SAMPLE", "1"))
	if res := post(t, bot.url+"/v1/chat", chatBody("traced-log", "hello")); res.status != 200 {
		t.Fatalf("chat: %d %+v", res.status, res.Error)
	}
	if err := bot.stop(); err != nil { // flushes the spans
		t.Fatal(err)
	}
	var line struct {
		Msg, Path string
		TraceID   string `json:"trace_id"`
		SpanID    string `json:"span_id"`
	}
	found := false
	for _, l := range strings.Split(bot.logs.String(), "\n") {
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "http" && line.Path == "/v1/chat" {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no log line of the chat request:\n%s", bot.logs.String())
	}
	var server []testenv.Span
	for _, s := range col.Spans() {
		if s.Name == "POST /v1/chat" {
			server = append(server, s)
		}
	}
	if len(server) != 1 || len(server[0].Trace) != 32 || strings.Trim(server[0].Trace, "0") == "" {
		t.Fatalf("want one server span of the turn, got %v (all: %v)", server, col.Spans())
	}
	if line.TraceID != server[0].Trace || line.SpanID != server[0].ID {
		t.Fatalf("the log line has trace_id %q span_id %q; the exported server span is %s / %s",
			line.TraceID, line.SpanID, server[0].Trace, server[0].ID)
	}
}
