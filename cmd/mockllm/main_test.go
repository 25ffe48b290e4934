package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

var baseURLRe = regexp.MustCompile(`base_url=(http://\S+/v1)`)

// start runs run in a goroutine and returns the server's base URL (without
// /v1), a cancel function and the channel run's result arrives on.
func start(t *testing.T, args []string, env map[string]string) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var stdout, stderr testenv.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"mockllm", "--addr", "127.0.0.1:0"}, args...),
			func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	var m []string
	listens := testenv.Eventually(10*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v; stderr: %s", err, stderr.String())
		default:
		}
		m = baseURLRe.FindStringSubmatch(stdout.String())
		return m != nil
	})
	if !listens {
		t.Fatalf("no listen line in %q", stdout.String())
	}
	base := strings.TrimSuffix(m[1], "/v1")
	waitHealthy(t, base)
	return base, cancel, done
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	var last error
	ready := testenv.Eventually(10*time.Second, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			last = err
			return false
		}
		resp.Body.Close()
		last = fmt.Errorf("GET /health: %s", resp.Status)
		return resp.StatusCode == http.StatusOK
	})
	if !ready {
		t.Fatalf("/health never became ready: %v", last)
	}
}

func stop(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("run did not return after cancel")
	}
}

func TestRun(t *testing.T) {
	base, cancel, done := start(t, []string{"--model", "m-test", "--api-key", "k", "--latency", "2ms", "--seed", "7"}, nil)

	body := `{"messages":[{"role":"user","content":"hello there"}]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	err = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	want := mockllm.Reply([]mockllm.Message{{Role: "user", Content: "hello there"}})
	if c.Model != "m-test" || len(c.Choices) != 1 || c.Choices[0].Message.Content != want {
		t.Fatalf("completion = %+v, want content %q", c, want)
	}

	resp, err = http.Get(base + "/faults")
	if err != nil {
		t.Fatal(err)
	}
	var f mockllm.Faults
	err = json.NewDecoder(resp.Body).Decode(&f)
	resp.Body.Close()
	if err != nil || f != (mockllm.Faults{Latency: 2 * time.Millisecond}) {
		t.Fatalf("faults = %+v, %v", f, err)
	}

	stop(t, cancel, done)
}

func TestRunAPIKeyFromEnv(t *testing.T) {
	base, cancel, done := start(t, nil, map[string]string{"MOCKLLM_API_KEY": "envkey"})
	resp, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the key: status %d", resp.StatusCode)
	}
	stop(t, cancel, done)
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"mockllm", "--help"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, s := range []string{"Usage: mockllm", "-addr", "-error-rate", "/v1/chat/completions"} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("usage lacks %q:\n%s", s, stderr.String())
		}
	}
}

func TestRunBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"--nope"},
		{"--error-rate", "2"},
		{"--error-status", "200"},
		{"--latency", "-1s"},
		{"--latency", "soon"},
		{"extra"},
		{"--addr", "256.0.0.1:bad"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"mockllm"}, args...), func(string) string { return "" }, &stdout, &stderr)
		if err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}
