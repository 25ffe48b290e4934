package history

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/memory"
)

// ok is an acknowledged turn n of session s with message m, answered as
// turn n.
func ok(s string, n int, m string) loadtest.CallRecord {
	return loadtest.CallRecord{Call: loadtest.Call{SessionID: s, Turn: n, Message: m}, Status: 200, Reply: loadtest.Reply{Turn: n}}
}

func failed(s string, n int, m string, status int, cause, retryAfter string) loadtest.CallRecord {
	return loadtest.CallRecord{Call: loadtest.Call{SessionID: s, Turn: n, Message: m}, Status: status, Cause: cause, RetryAfter: retryAfter}
}

// kept is the memory of a conversation: user entries of the given texts,
// numbered from 1, each followed by its assistant entry.
func kept(texts ...string) []memory.Entry {
	var es []memory.Entry
	for i, t := range texts {
		es = append(es, memory.Entry{Role: "user", Content: t, Turn: i + 1}, memory.Entry{Role: "assistant", Content: "re: " + t, Turn: i + 1})
	}
	return es
}

func source(m map[string][]memory.Entry) Source {
	return func(_ context.Context, c string) ([]memory.Entry, error) { return m[c], nil }
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		calls []loadtest.CallRecord
		mem   map[string][]memory.Entry
		want  Report
	}{
		{
			name:  "clean",
			calls: []loadtest.CallRecord{ok("a", 1, "a1"), ok("a", 2, "a2"), ok("b", 1, "b1")},
			mem:   map[string][]memory.Entry{"a": kept("a1", "a2"), "b": kept("b1")},
			want:  Report{Requests: 3, Acknowledged: 3},
		},
		{
			name:  "lost",
			calls: []loadtest.CallRecord{ok("a", 1, "a1"), ok("a", 2, "a2"), ok("a", 3, "a3")},
			mem:   map[string][]memory.Entry{"a": kept("a1", "a2")},
			want:  Report{Requests: 3, Acknowledged: 3, Lost: 1},
		},
		{
			name:  "duplicated",
			calls: []loadtest.CallRecord{ok("a", 1, "a1"), ok("a", 2, "a2")},
			mem:   map[string][]memory.Entry{"a": append(kept("a1", "a2"), kept("a2")...)},
			want:  Report{Requests: 2, Acknowledged: 2, Duplicated: 1},
		},
		{
			name:  "reordered",
			calls: []loadtest.CallRecord{ok("a", 1, "a1"), ok("a", 2, "a2"), ok("a", 3, "a3")},
			mem:   map[string][]memory.Entry{"a": kept("a2", "a1", "a3")},
			// a2 is kept as turn 1 and a1 as turn 2: both misnumbered too.
			want: Report{Requests: 3, Acknowledged: 3, Reordered: 1, Misnumbered: 2},
		},
		{
			name: "a failed turn kept, numbering continues",
			calls: []loadtest.CallRecord{ok("a", 1, "a1"), failed("a", 2, "a2", 0, loadtest.CauseTimeout, ""),
				{Call: loadtest.Call{SessionID: "a", Turn: 3, Message: "a3"}, Status: 200, Reply: loadtest.Reply{Turn: 3}}},
			mem:  map[string][]memory.Entry{"a": kept("a1", "a2", "a3")},
			want: Report{Requests: 3, Acknowledged: 2, RecordedFailed: 1, Failed: map[string]int{"timeout": 1}, Bad: 1, BadByCause: map[string]int{"timeout": 1}},
		},
		{
			name: "failures with and without Retry-After",
			calls: []loadtest.CallRecord{
				failed("a", 1, "a1", 503, "status_503", "1"),
				failed("a", 2, "a2", 503, "status_503", ""),
				failed("a", 3, "a3", 429, "status_429", "2"),
				failed("a", 4, "a4", 502, "status_502", ""),
				failed("a", 5, "a5", 400, "status_400", ""),
				failed("a", 6, "a6", 0, loadtest.CauseConnection, ""),
			},
			mem: map[string][]memory.Entry{},
			want: Report{Requests: 6, Failed: map[string]int{"status_503": 2, "status_429": 1, "status_502": 1, "status_400": 1, "connection": 1},
				Bad: 3, BadByCause: map[string]int{"status_503": 1, "status_502": 1, "connection": 1}},
		},
		{
			name: "a continuity-broken 200 is acknowledged",
			calls: []loadtest.CallRecord{ok("a", 1, "a1"),
				{Call: loadtest.Call{SessionID: "a", Turn: 2, Message: "a2"}, Status: 200, Cause: loadtest.CauseContinuity, Reply: loadtest.Reply{Turn: 3}}},
			mem:  map[string][]memory.Entry{"a": kept("a1", "a2")},
			want: Report{Requests: 2, Acknowledged: 2, Misnumbered: 1},
		},
		{
			name: "a 200 stream that ended in an error is a failure, kept anyway",
			calls: []loadtest.CallRecord{ok("a", 1, "a1"),
				{Call: loadtest.Call{SessionID: "a", Turn: 2, Message: "a2"}, Status: 200, Cause: loadtest.CauseDecode}},
			mem:  map[string][]memory.Entry{"a": kept("a1", "a2")},
			want: Report{Requests: 2, Acknowledged: 1, RecordedFailed: 1, Failed: map[string]int{"status_200_decode": 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check(context.Background(), tc.calls, source(tc.mem))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want.Failed == nil {
				tc.want.Failed = map[string]int{}
			}
			if tc.want.BadByCause == nil {
				tc.want.BadByCause = map[string]int{}
			}
			if got.Clean() != tc.want.Clean() {
				t.Errorf("Clean() = %v", got.Clean())
			}
			examples := got.Examples
			got.Examples = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			if !got.Clean() && len(examples) == 0 {
				t.Fatal("violations without an example")
			}
		})
	}
}

func TestCheckExamplesAreBounded(t *testing.T) {
	var calls []loadtest.CallRecord
	for i := 1; i <= 3*MaxExamples; i++ {
		calls = append(calls, ok("a", i, strings.Repeat("x", i)))
	}
	got, err := Check(context.Background(), calls, source(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.Lost != 3*MaxExamples || len(got.Examples) != MaxExamples || !strings.HasPrefix(got.Examples[0], "lost: a turn 1") {
		t.Fatalf("lost %d, examples %q", got.Lost, got.Examples)
	}
}

func TestCheckSourceError(t *testing.T) {
	boom := errors.New("redis down")
	_, err := Check(context.Background(), []loadtest.CallRecord{ok("a", 1, "a1")},
		func(context.Context, string) ([]memory.Entry, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

func TestCheckIM(t *testing.T) {
	ev := func(id string, status int) loadtest.CallRecord {
		return loadtest.CallRecord{Call: loadtest.Call{SessionID: id}, Status: status}
	}
	calls := []loadtest.CallRecord{
		ev("once", 200),
		ev("never", 200),
		ev("twice", 200),
		ev("retried", 503), ev("retried", 200), // a platform's retry of the same event
		ev("refused", 503), // not acknowledged, never answered: the platform retries it
	}
	answers := map[string]int{"once": 1, "twice": 2, "retried": 1}
	got := CheckIM(calls, func(c loadtest.CallRecord) string { return c.SessionID }, answers)
	want := IMReport{Events: 5, Acknowledged: 4, Answered0: 1, Answered1: 2, Answered2: 1}
	examples := got.Examples
	got.Examples = nil
	if got.Events != want.Events || got.Acknowledged != want.Acknowledged || got.Answered0 != want.Answered0 ||
		got.Answered1 != want.Answered1 || got.Answered2 != want.Answered2 {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got.Clean() || len(examples) != 2 {
		t.Fatalf("clean %v, examples %q", got.Clean(), examples)
	}
	if _, ok := answers["never"]; ok {
		t.Fatal("CheckIM changed answers")
	}
}
