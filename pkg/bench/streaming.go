package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// streamingConcurrency are the streams in flight of the streaming row.
var streamingConcurrency = []int{1, 16}

// The streaming row's backend: mockllm sends each reply in streamChunks
// pieces streamChunkDelay apart (a fast model's tokens, batched).
const (
	streamChunks     = 20
	streamChunkDelay = 5 * time.Millisecond
)

// streaming is the streaming row: the same streamed completions (`stream:
// true` on /v1/chat/completions, closed model) straight at mockllm and
// through nginx → bot → mockllm: time to the first content piece, the gaps
// between pieces and pieces per second, per concurrency.
func (r *run) streaming(ctx context.Context) error {
	if err := r.ensureBots(ctx, "openai"); err != nil {
		return err
	}
	faults := fmt.Sprintf(`{"chunks":%d,"chunk_delay_ms":%d}`, streamChunks, streamChunkDelay.Milliseconds())
	if err := r.f.setFaults(ctx, faults); err != nil {
		return err
	}
	defer func() { _ = r.f.setFaults(context.Background(), `{}`) }()
	dur := r.o.Step / 2
	for _, c := range streamingConcurrency {
		d, err := r.streams(ctx, r.f.mockURL(), c, dur)
		if err != nil {
			return err
		}
		fl, err := r.streams(ctx, r.f.nginxURL("fleet"), c, dur)
		if err != nil {
			return err
		}
		row := Streaming{Concurrency: c, Direct: d, Fleet: fl, AddedTTFTP50MS: round(fl.TTFTP50MS-d.TTFTP50MS, 3),
			AddedTTFTP99MS: round(fl.TTFTP99MS-d.TTFTP99MS, 3)}
		r.rep.Streaming = append(r.rep.Streaming, row)
		r.logf("  streaming c=%d: direct TTFT p50 %.2f p99 %.2f ms, %.0f pieces/s; fleet TTFT p50 %.2f p99 %.2f ms, %.0f pieces/s",
			c, d.TTFTP50MS, d.TTFTP99MS, d.PiecesPerS, fl.TTFTP50MS, fl.TTFTP99MS, fl.PiecesPerS)
	}
	return nil
}

// streamWords make each message long enough for mockllm's reply to have
// streamChunks pieces (it splits at words).
var streamWords = strings.Repeat("lorem ipsum ", streamChunks)

// streams runs c clients, each sending one streamed completion after
// another to base for dur, and measures them.
func (r *run) streams(ctx context.Context, base string, c int, dur time.Duration) (StreamLatency, error) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}}
	defer client.CloseIdleConnections()
	var (
		mu         sync.Mutex
		ttft, gaps []time.Duration
		out        StreamLatency
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				first, g, err := stream(ctx, client, base, fmt.Sprintf("bench-stream-%d-%d", c, w), fmt.Sprintf("stream %d of client %d: %s", n, w, streamWords))
				if ctx.Err() != nil {
					return // cut by the end of the run, not counted
				}
				mu.Lock()
				out.Streams++
				if err != nil {
					out.Errors++
					if out.FirstError == "" {
						out.FirstError = err.Error()
					}
				} else {
					ttft = append(ttft, first)
					gaps = append(gaps, g...)
					out.Pieces += len(g) + 1
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if len(ttft) == 0 {
		return out, fmt.Errorf("no stream to %s completed (%d errors, the first: %s)", base, out.Errors, out.FirstError)
	}
	out.TTFTP50MS, out.TTFTP99MS = ms(quantile(ttft, 0.5)), ms(quantile(ttft, 0.99))
	out.GapP50MS, out.GapP99MS = ms(quantile(gaps, 0.5)), ms(quantile(gaps, 0.99))
	out.PiecesPerS = round(float64(out.Pieces)/el.Seconds(), 0)
	return out, nil
}

// stream sends one streamed completion for user and reads it to [DONE]:
// the time to its first content piece and the gaps between the pieces.
func stream(ctx context.Context, client *http.Client, base, user, msg string) (time.Duration, []time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"model": "mock-1", "stream": true, "user": user,
		"messages": []map[string]string{{"role": "user", "content": msg}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+Key)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("status %d", res.StatusCode)
	}
	var (
		first time.Duration
		last  time.Time
		gaps  []time.Duration
	)
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			if last.IsZero() {
				return 0, nil, fmt.Errorf("[DONE] before any content")
			}
			return first, gaps, nil
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(data, &chunk); err != nil {
			return 0, nil, fmt.Errorf("event %q: %w", data, err)
		}
		if len(chunk.Choices) == 0 || chunk.Choices[0].Delta.Content == "" {
			continue
		}
		now := time.Now()
		if last.IsZero() {
			first = now.Sub(sent)
		} else {
			gaps = append(gaps, now.Sub(last))
		}
		last = now
	}
	if err := sc.Err(); err != nil {
		return 0, nil, err
	}
	return 0, nil, fmt.Errorf("the stream ended without [DONE]")
}

// quantile is the q-quantile of ds (nearest rank); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
