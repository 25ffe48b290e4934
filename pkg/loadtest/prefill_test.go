package loadtest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// TestPrefillThenRun gives three conversations five turns each, then runs
// the load on them: every reply continues where the prefill stopped.
func TestPrefillThenRun(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string][]string{}
	f := &fakeChat{log: func(s, m string) {
		mu.Lock()
		defer mu.Unlock()
		seen[s] = append(seen[s], m)
	}}
	opts := Options{URL: serve(t, f), Users: 3, Sessions: 3, Turns: -1, Duration: 300 * time.Millisecond,
		Seed: 9, SessionPrefix: "pf-", MessageBytes: 64}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pr, err := Prefill(ctx, opts, 5)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Conversations != 3 || pr.Requests != 15 || pr.Failed != 0 {
		t.Fatalf("prefill %+v", pr)
	}
	mu.Lock()
	if len(seen) != 3 {
		t.Fatalf("prefill reached %d conversations, want 3", len(seen))
	}
	mu.Unlock()
	opts.StartTurn = 5
	res := mustRun(t, opts)
	if res.Succeeded == 0 || res.Continuity.Broken != 0 || res.Failed != 0 {
		t.Fatalf("run after the prefill: %d ok, %d failed %v, continuity %+v", res.Succeeded, res.Failed, res.Errors, res.Continuity)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Errorf("the run used %d conversations, want the 3 prefilled ones", len(seen))
	}
	distinct := map[string]bool{}
	for _, msgs := range seen {
		if len(msgs) <= 5 {
			t.Errorf("a conversation got %d turns, want more than the 5 prefilled", len(msgs))
		}
		for _, m := range msgs {
			distinct[m] = true
		}
	}
	if n := f.k.Load(); len(distinct) != int(n) {
		t.Errorf("%d distinct messages in %d turns: sized messages must be unique", len(distinct), n)
	}
}

func TestPrefillNeedsSeedAndPrefix(t *testing.T) {
	t.Parallel()
	_, err := Prefill(context.Background(), Options{Rate: 1}, 3)
	var fields []string
	for _, fe := range FieldErrors(err) {
		fields = append(fields, fe.Field)
	}
	if strings.Join(fields, ",") != "Seed,SessionPrefix" {
		t.Errorf("error %v: fields %v, want Seed and SessionPrefix", err, fields)
	}
}

func TestMessageBytes(t *testing.T) {
	t.Parallel()
	for _, size := range []int{MinMessageBytes, 100, 10 << 10} {
		g := newSessionIDs("p-", 1, size)
		for ord := range int64(30) {
			s := g.newSession(ord)
			for turn := 1; turn <= 3; turn++ {
				m := g.message(s, turn)
				if len(m) != size || !utf8.ValidString(m) {
					t.Fatalf("size %d: message of %d bytes (valid UTF-8 %v): %q", size, len(m), utf8.ValidString(m), m)
				}
			}
		}
	}
	if err := (Options{Rate: 1, MessageBytes: 8}).Validate(); err == nil || !strings.Contains(err.Error(), "MessageBytes must be at least") {
		t.Errorf("MessageBytes 8: %v", err)
	}
}

func TestOnStatusOncePerCode(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var codes []int
	f := &fakeChat{token: "right"}
	res := mustRun(t, Options{URL: serve(t, f), Token: "wrong", Rate: 50, Duration: 300 * time.Millisecond,
		OnStatus: func(code int) {
			mu.Lock()
			defer mu.Unlock()
			codes = append(codes, code)
		}})
	mu.Lock()
	defer mu.Unlock()
	if res.Errors["status_401"] < 2 || len(codes) != 1 || codes[0] != 401 {
		t.Errorf("%d × 401, OnStatus saw %v; want one call for 401", res.Errors["status_401"], codes)
	}
}

func TestFieldErrorText(t *testing.T) {
	t.Parallel()
	err := Options{Users: 4, Sessions: 2, Think: -1}.Validate()
	flag := func(f string) string { return "--" + strings.ToLower(f) }
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Text(flag))
	}
	if want := "--think must not be negative, got -1ns"; len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want [%q] (the relations are checked once the values are)", got, want)
	}
	err = Options{Users: 4, Sessions: 2}.Validate()
	fes := FieldErrors(err)
	if len(fes) != 1 || fes[0].Text(flag) != "--sessions (2) must be at least --users (4): every user needs a conversation of its own" {
		t.Errorf("got %v", err)
	}
	if !errors.As(err, new(*FieldError)) || !strings.HasPrefix(err.Error(), "Sessions (2) must be at least Users (4)") {
		t.Errorf("Error() = %q", err)
	}
}
