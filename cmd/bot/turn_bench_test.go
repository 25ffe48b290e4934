package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

// turnConversations are BenchmarkTurn's concurrent conversations: enough
// for the instance to batch wake-ups as it does under the bench's load.
const turnConversations = 8

// BenchmarkTurn is one POST /v1/chat turn through a whole instance
// started by run, set up as make bench's fleet is (backend openai against
// mockllm, memory.max_entries 100 with every conversation already at 100
// entries, the bootstrap API key, the per-IP limit off, the access log at
// info to a file), from turnConversations conversations at once.
//
// Besides ns/op and allocs/op it reports cpu-µs/op, the process's user +
// system CPU per turn (the instance, mockllm and the client together), and
// redis-rt/op, the Redis server's read events per turn (total_reads_processed:
// one per command or pipeline the instance sends; the registry's heartbeats
// are in it too, a few per second). Under -cpuprofile the mockllm server
// and the client run under the pprof label part=mockllm and part=client, so
// that `go tool pprof -tagignore part=. cpu.out` is the instance alone.
func BenchmarkTurn(b *testing.B) {
	r := testenv.StartRedis(b)
	var mock *httptest.Server
	pprof.Do(context.Background(), pprof.Labels("part", "mockllm"), func(context.Context) {
		mock = httptest.NewServer(mockllm.New(mockllm.Options{}))
	})
	b.Cleanup(mock.Close)
	inst := startBot(b, merge(redisEnv(r), map[string]string{
		"BOT_LLM_PROVIDER": "openai", "MODEL_ENDPOINT": mock.URL + "/v1", "MODEL_SERVICE_KEY": "bench", "BOT_LLM_MODEL": "mock-1",
		"BOT_MEMORY_MAX_ENTRIES": "100", "BOT_RATELIMIT_PER_IP": "0",
		"BOT_LOG_LEVEL": "info", "BOT_LOG_FILE": filepath.Join(b.TempDir(), "bot.log"),
	}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: turnConversations}}
	b.Cleanup(client.CloseIdleConnections)
	labels := pprof.WithLabels(context.Background(), pprof.Labels("part", "client"))
	turn := func(session string, n int) error {
		body := fmt.Sprintf(`{"session_id":%q,"message":"question %d about the fleet and its memory"}`, session, n)
		req, _ := http.NewRequest(http.MethodPost, inst.url+"/v1/chat", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte(`"reply"`)) {
			return fmt.Errorf("turn %d of %s: status %d: %s", n, session, resp.StatusCode, raw)
		}
		return nil
	}
	// Every conversation is filled to 100 entries (50 turns) first.
	var failed atomic.Value
	each := func(f func(session string)) {
		var wg sync.WaitGroup
		for c := range turnConversations {
			wg.Go(func() {
				pprof.SetGoroutineLabels(labels)
				f("bench-" + strconv.Itoa(c))
			})
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
	}
	each(func(s string) {
		for i := range 50 {
			if err := turn(s, i); err != nil {
				failed.CompareAndSwap(nil, err)
				return
			}
		}
	})
	rdb := r.Client()
	reads := func() int64 { return redisStat(b, rdb, "total_reads_processed") }
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, reads0 := processCPU(), reads()
	var next atomic.Int64
	each(func(s string) {
		for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
			if err := turn(s, int(n)); err != nil {
				failed.CompareAndSwap(nil, err)
				return
			}
		}
	})
	b.StopTimer()
	cpu, rt := processCPU()-cpu0, reads()-reads0-1 // the second INFO's own read
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(rt)/float64(b.N), "redis-rt/op")
}

// processCPU is the process's user + system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisStat is one integer field of the server's INFO stats.
func redisStat(b *testing.B, rdb *redis.Client, field string) int64 {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("INFO stats has no %s", field)
	return 0
}
