// Command mockllm serves an OpenAI-compatible mock LLM backend with fault
// injection, for demos, tests and benchmarks. See package
// github.com/botfleet/botfleet/pkg/mockllm for the endpoints and the reply
// format.
//
// Usage:
//
//	mockllm [--addr 127.0.0.1:9998] [--model mock-1] [--api-key KEY]
//	        [--latency 0s] [--jitter 0s] [--error-rate 0] [--error-status 500] [--seed 0]
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/mockllm"
)

// shutdownGrace bounds the graceful shutdown.
const shutdownGrace = 5 * time.Second

func main() { cli.Main("mockllm", run) }

const usage = `Usage: mockllm [flags]

mockllm is an OpenAI-compatible mock LLM backend for demos, tests and
benchmarks. Point an OpenAI client at http://ADDR/v1. The reply is
deterministic: "mock n=<messages> h=<digest of the history>: <last user message>".

Endpoints:
  POST /v1/chat/completions   chat completion; "stream": true answers with SSE
  GET  /v1/models             the one model
  GET  /health                {"status":"ok"}
  GET  /stats, POST /reset    counters of calls, injected errors and streams
  GET  /faults, PUT /faults   injected faults, e.g.
                              curl -X PUT -d '{"latency_ms":50,"error_rate":0.1}' http://ADDR/faults

Flags:
`

// run parses the flags, serves until ctx is done and shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		args = args[1:]
	}
	fs := cli.FlagSet("mockllm", usage, stderr)
	addr := fs.String("addr", "127.0.0.1:9998", "listen `address` (host:port; port 0 picks a free one)")
	model := fs.String("model", mockllm.DefaultModel, "model `name` reported when a request names none")
	apiKey := fs.String("api-key", getenv("MOCKLLM_API_KEY"), "if set, require \"Authorization: Bearer `KEY`\" on /v1/ (default $MOCKLLM_API_KEY)")
	latency := fs.Duration("latency", 0, "added latency of every chat completion")
	jitter := fs.Duration("jitter", 0, "uniform extra latency in 0..`jitter`")
	errorRate := fs.Float64("error-rate", 0, "probability in [0,1] of answering a chat completion with --error-status")
	errorStatus := fs.Int("error-status", 0, "HTTP `status` of injected errors, 400..599 (default 500 when --error-rate > 0)")
	chunks := fs.Int("chunks", 0, "content chunks of a streamed reply (0: up to 4), split at word boundaries")
	chunkDelay := fs.Duration("chunk-delay", 0, "wait before each content chunk of a streamed reply")
	cutAfter := fs.Int("cut-after", 0, "cut streams after this many content chunks: no finish, no [DONE] (0: never)")
	seed := fs.Int64("seed", 0, "seed of the error and jitter random numbers (0: time-based)")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}

	srv := mockllm.New(mockllm.Options{Model: *model, APIKey: *apiKey, Seed: *seed})
	faults := mockllm.Faults{Latency: *latency, Jitter: *jitter, ErrorRate: *errorRate, ErrorStatus: *errorStatus,
		Chunks: *chunks, ChunkDelay: *chunkDelay, CutAfter: *cutAfter}
	if err := srv.SetFaults(faults); err != nil {
		return err
	}

	log := slog.New(slog.NewTextHandler(stdout, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	f := srv.Faults()
	log.Info("mockllm listening", "addr", ln.Addr().String(), "base_url", "http://"+ln.Addr().String()+"/v1",
		"model", *model, "auth", *apiKey != "", "latency", f.Latency, "jitter", f.Jitter,
		"error_rate", f.ErrorRate, "error_status", f.ErrorStatus)

	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown incomplete; closing", "err", err)
		_ = hs.Close()
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	st := srv.Stats()
	log.Info("mockllm stopped", "calls", st.Calls, "errors", st.Errors, "streams", st.Streams)
	return nil
}
