package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Inspect shows what a conversation holds without touching it; Clear
// forgets it, and the next turn is the first again; a finished request
// still replays.
func TestInspectAndClear(t *testing.T) {
	r := testenv.StartRedis(t)
	reg := prometheus.NewRegistry()
	s := newStore(t, r.Client(), Options{MaxEntries: 4, Registerer: reg})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if _, err := runTurn(t, s, "api:default:c2c:9", fmt.Sprint("r", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.Inspect(ctx, "api:default:c2c:9")
	if err != nil {
		t.Fatal(err)
	}
	if info.Turns != 3 || len(info.Entries) != 4 || info.Entries[0].Turn != 2 || info.TTL <= 0 || info.Waiting != 0 {
		t.Fatalf("inspect: %+v", info)
	}
	if had, err := s.Clear(ctx, "api:default:c2c:9"); err != nil || !had {
		t.Fatalf("clear: %v %v", had, err)
	}
	if had, err := s.Clear(ctx, "api:default:c2c:9"); err != nil || had {
		t.Fatalf("second clear: %v %v, want nothing to clear", had, err)
	}
	if info, err := s.Inspect(ctx, "api:default:c2c:9"); err != nil || info.Turns != 0 || len(info.Entries) != 0 || info.TTL != 0 {
		t.Fatalf("inspect after clear: %+v %v", info, err)
	}
	turn, err := runTurn(t, s, "api:default:c2c:9", "r3", "m3")
	if err != nil || turn.Replay == nil || turn.Replay.Turn != 3 {
		t.Fatalf("a finished request after the clear: %+v %v, want its replay", turn, err)
	}
	if turn, err := runTurn(t, s, "api:default:c2c:9", "r4", "m4"); err != nil || turn.Number != 1 || len(turn.History) != 0 {
		t.Fatalf("next turn after the clear: %+v %v, want turn 1 with no history", turn, err)
	}
	// Every Begin was timed: four granted, one replayed.
	if n := testutil.CollectAndCount(reg, "botfleet_memory_lock_wait_seconds"); n != 2 {
		t.Fatalf("lock wait series: %d, want granted and replayed", n)
	}
	for outcome, want := range map[string]uint64{"granted": 4, "replayed": 1} {
		if got := histogramCount(t, reg, "botfleet_memory_lock_wait_seconds", outcome); got != want {
			t.Errorf("lock waits %s: %d, want %d", outcome, got, want)
		}
	}
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name, outcome string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
