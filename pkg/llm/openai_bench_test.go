package llm_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/mockllm"
)

// BenchmarkOpenAIComplete is one backend call with a 100-entry history
// against an in-process mockllm: the client's share of a turn.
func BenchmarkOpenAIComplete(b *testing.B) {
	srv := httptest.NewServer(mockllm.New(mockllm.Options{}))
	defer srv.Close()
	o, err := llm.NewOpenAI(llm.OpenAIOptions{BaseURL: srv.URL + "/v1", Model: "mock-1", Retries: -1})
	if err != nil {
		b.Fatal(err)
	}
	msgs := []llm.Message{{Role: llm.RoleSystem, Content: "be brief"}}
	for i := range 50 {
		msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: fmt.Sprintf("question %d about the fleet and its memory", i)},
			llm.Message{Role: llm.RoleAssistant, Content: fmt.Sprintf("answer %d: the fleet keeps memory in Redis", i)})
	}
	msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: "and now?"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Complete(ctx, llm.Request{Messages: msgs}); err != nil {
			b.Fatal(err)
		}
	}
}
