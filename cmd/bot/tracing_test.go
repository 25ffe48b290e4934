package main

import (
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
