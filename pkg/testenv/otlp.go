package testenv

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLP is a local OTLP/HTTP trace collector: it decodes the protobuf
// exports the instances post to /v1/traces and keeps every span.
type OTLP struct {
	// URL is the collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT).
	URL string

	mu    sync.Mutex
	spans []Span
}

// Span is one exported span; the ids are in hex.
type Span struct {
	Name, Trace, ID, Parent string
}

// StartOTLP serves a collector on loopback until the test ends.
func StartOTLP(t testing.TB) *OTLP {
	o := &OTLP{}
	srv := httptest.NewServer(http.HandlerFunc(o.export))
	t.Cleanup(srv.Close)
	o.URL = srv.URL
	return o
}

func (o *OTLP) export(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, Span{Name: s.GetName(), Trace: hex.EncodeToString(s.GetTraceId()),
					ID: hex.EncodeToString(s.GetSpanId()), Parent: hex.EncodeToString(s.GetParentSpanId())})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// Spans returns every span received so far, in the order they came.
func (o *OTLP) Spans() []Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.spans)
}

// Trace returns the spans of one trace (id in hex).
func (o *OTLP) Trace(id string) []Span {
	return slices.DeleteFunc(o.Spans(), func(s Span) bool { return s.Trace != id })
}
