package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// cpuProfile takes a CPU profile of instance i for secs seconds into file
// and counts the turns the instance served meanwhile.
func (f *fleet) cpuProfile(ctx context.Context, i int, secs int, file string) (turns float64, err error) {
	before, err := f.turnsOf(ctx, i)
	if err != nil {
		return 0, err
	}
	url := f.botURL(i) + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+Key)
	c := &http.Client{Timeout: time.Duration(secs+20) * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("profile of instance %d: %s", i, resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return 0, err
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	after, err := f.turnsOf(ctx, i)
	return after - before, err
}

// turnsOf is the turns instance i served so far (failed ones excluded).
func (f *fleet) turnsOf(ctx context.Context, i int) (float64, error) {
	m, err := f.metrics(ctx, i)
	if err != nil {
		return 0, err
	}
	var n float64
	for _, mm := range m["botfleet_chat_turns_total"].GetMetric() {
		if label(mm, "outcome") != "failed" {
			n += mm.GetCounter().GetValue()
		}
	}
	return n, nil
}

// readProfile returns a CPU profile's total CPU seconds and its top n
// functions by flat time, with their cumulative share.
func readProfile(file string, n int) (secs float64, top []TopFn, err error) {
	fh, err := os.Open(file)
	if err != nil {
		return 0, nil, err
	}
	defer fh.Close()
	p, err := profile.Parse(fh)
	if err != nil {
		return 0, nil, err
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds: the last sample type
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	flat, cum := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		seen := map[string]bool{}
		for li, loc := range s.Location {
			for k, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				name := line.Function.Name
				if li == 0 && k == 0 {
					flat[name] += v
				}
				if !seen[name] {
					seen[name] = true
					cum[name] += v
				}
			}
		}
	}
	if total == 0 {
		return 0, nil, nil
	}
	names := make([]string, 0, len(flat))
	for name := range flat {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		if flat[a] != flat[b] {
			return int(flat[b] - flat[a])
		}
		return strings.Compare(a, b)
	})
	for _, name := range names[:min(n, len(names))] {
		top = append(top, TopFn{Function: name, FlatPct: pct(flat[name], total), CumPct: pct(cum[name], total)})
	}
	return float64(total) / 1e9, top, nil
}

// areas attribute a profile's samples to parts of a turn: a sample goes to
// the innermost frame that one of them claims (so encoding/json called by
// the LLM client counts as JSON), else to the GC or the scheduler by its
// root frame, else to "other runtime".
var areas = []struct {
	name     string
	prefixes []string
}{
	{"JSON (encoding/json)", []string{"encoding/json."}},
	{"Redis client (go-redis)", []string{"github.com/redis/go-redis/"}},
	{"Prometheus metrics", []string{"github.com/prometheus/"}},
	{"logging (log/slog)", []string{"log/slog."}},
	{"tracing (otel)", []string{"go.opentelemetry.io/"}},
	{"LLM call: openai-go, HTTP client", []string{"github.com/openai/openai-go", "github.com/botfleet/botfleet/pkg/llm.", "net/http.(*Transport)", "net/http.(*persistConn)", "net/http.(*Client)", "net/http.persistConnWriter"}},
	{"chat turn, memory (pkg/chat, pkg/memory)", []string{"github.com/botfleet/botfleet/pkg/chat.", "github.com/botfleet/botfleet/pkg/memory."}},
	{"HTTP API: echo, middleware, handler", []string{"github.com/labstack/echo", "github.com/botfleet/botfleet/pkg/httpapi.", "github.com/botfleet/botfleet/pkg/telemetry."}},
	{"HTTP server: net/http conn, headers, I/O", []string{"net/http.(*conn)", "net/http.(*response)", "net/http.(*chunkWriter)", "net/http.readRequest", "net/http.Header", "net/textproto.", "bufio."}},
}

// byArea returns the share (percent) of a profile's CPU in each area.
func byArea(file string) (map[string]float64, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	p, err := profile.Parse(fh)
	if err != nil {
		return nil, err
	}
	vi := len(p.SampleType) - 1
	out := map[string]float64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		out[areaOf(s)] += float64(v)
	}
	for k := range out {
		out[k] = round(100*out[k]/float64(max(total, 1)), 1)
	}
	return out, nil
}

func areaOf(s *profile.Sample) string {
	var root string
	for _, loc := range s.Location { // leaf first
		for _, l := range loc.Line {
			if l.Function == nil {
				continue
			}
			root = l.Function.Name
			for _, a := range areas {
				for _, p := range a.prefixes {
					if strings.HasPrefix(root, p) {
						return a.name
					}
				}
			}
		}
	}
	switch {
	case strings.HasPrefix(root, "runtime.gcBgMarkWorker"):
		return "GC (background mark)"
	case strings.HasPrefix(root, "runtime.mcall"), strings.HasPrefix(root, "runtime.mstart"):
		return "scheduler, netpoll, timers"
	}
	return "other runtime"
}

func pct(v, total int64) float64 { return round(100*float64(v)/float64(total), 1) }
