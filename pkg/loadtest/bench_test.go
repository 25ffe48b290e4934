package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkRequest measures one chat request through the generator (build,
// send, read, check, record) against an in-process fake, server included:
// b.N requests by 8 closed-model users.
func BenchmarkRequest(b *testing.B) {
	srv := httptest.NewServer(&fakeChat{})
	defer srv.Close()
	opts := Options{URL: srv.URL, Users: 8, Duration: time.Hour}
	if err := opts.validate(); err != nil {
		b.Fatal(err)
	}
	r, err := newRunner(opts)
	if err != nil {
		b.Fatal(err)
	}
	r.start = time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w, s := new(worker), r.fresh()
		for pb.Next() {
			r.do(context.Background(), w, s, r.since())
			s = r.renew(s)
		}
	})
}

// BenchmarkChatTarget measures building a request and checking a reply.
func BenchmarkChatTarget(b *testing.B) {
	t, _ := NewChatTarget("http://127.0.0.1:18789", "key")
	body := []byte(`{"reply":"您好，请问有什么可以帮您？","confidence":0.98,"timestamp":1795000000,"session_id":"lt-1","turn":3,"instance":"bot-instance-8080"}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req, _ := t.NewRequest(ctx, Call{SessionID: "lt-1", Turn: 3, Message: "你们的营业时间是几点？"})
		_ = req
		if _, err := t.Check(http.StatusOK, body); err != nil {
			b.Fatal(err)
		}
	}
}
