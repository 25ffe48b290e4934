package memory

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// BenchmarkBeginCommit is a turn's two round trips with the history at a
// fixed size (MaxEntries keeps it there). Besides the wall time, which
// includes Redis's work, it reports this process's CPU per turn
// (cpu-µs/op, from getrusage): the client's share, what an instance spends.
func BenchmarkBeginCommit(b *testing.B) {
	r := testenv.StartRedis(b)
	seq := 0
	for _, history := range []int{0, 100} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			s := New(context.Background(), r.Client(), Options{MaxEntries: max(history, 2)})
			defer s.Close()
			ctx := context.Background()
			msg := strings.Repeat("word ", 20)
			turn := func(conv, id string) {
				t, err := s.Begin(ctx, Request{Conversation: conv, ID: id, Fingerprint: "f"})
				if err != nil {
					b.Fatal(err)
				}
				if err := t.Commit(ctx, msg, "the reply to "+msg, time.Now(), []byte(`{"reply":"x"}`), nil); err != nil {
					b.Fatal(err)
				}
			}
			// b.N grows over several calls of this function: request ids
			// stay fresh across them (a repeated one would be a replay).
			seq++
			conv := fmt.Sprint("bench:", history)
			for i := range history / 2 {
				turn(conv, fmt.Sprint("warm", seq, ":", i))
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := conv
				if history == 0 {
					c = fmt.Sprint("bench:new:", seq, ":", i)
				}
				turn(c, fmt.Sprint("r", seq, ":", i))
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
