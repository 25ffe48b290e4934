package capacity

import (
	"context"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// BenchmarkTurns is the Redis side of chat turns (b.N of them, from four
// Stores, 64 in flight) on a standalone server and on Clusters of 1, 2
// and 3 masters, on loopback. Run it with a fixed count, e.g.
//
//	go test -run '^$' -bench . -benchtime 20000x ./pkg/capacity
//
// It reports turns/s, the masters' CPU per turn (redis-µs/turn), the
// busiest master's CPU in cores and used_memory's growth per turn.
func BenchmarkTurns(b *testing.B) {
	setups := []struct {
		name string
		top  testenv.Topology
	}{
		{"standalone", testenv.StartRedis(b)},
		{"masters=1", testenv.StartCluster(b, testenv.ClusterOptions{Masters: 1})},
		{"masters=2", testenv.StartCluster(b, testenv.ClusterOptions{Masters: 2})},
		{"masters=3", testenv.StartCluster(b, testenv.ClusterOptions{Masters: 3})},
	}
	for _, su := range setups {
		b.Run(su.name, func(b *testing.B) {
			r, err := Run(context.Background(), Options{NewClient: su.top.UniversalClient, Turns: b.N})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.TurnsPerSecond, "turns/s")
			b.ReportMetric(float64(r.RedisCPUPerTurn.Nanoseconds())/1e3, "redis-µs/turn")
			b.ReportMetric(r.BusiestMaster, "busiest-master-cores")
			b.ReportMetric(r.MemoryPerTurn, "B/turn")
			b.Log(r)
		})
	}
}

// BenchmarkFootprint measures, with MEMORY USAGE, a history entry, a
// conversation's history at memory.max_entries (100) and a finished
// request's record, for 100-byte messages and 300-byte replies.
func BenchmarkFootprint(b *testing.B) {
	top := testenv.StartRedis(b)
	var f Footprint
	for b.Loop() {
		var err error
		if f, err = MeasureFootprint(context.Background(), Options{NewClient: top.UniversalClient}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(f.EntryBytes, "B/entry")
	b.ReportMetric(float64(f.ConversationBytes), "B/conversation")
	b.ReportMetric(float64(f.RequestBytes), "B/request")
}
