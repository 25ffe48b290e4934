package bench

import (
	"context"
	"fmt"

	"github.com/botfleet/botfleet/pkg/loadtest"
)

// Growth table: history lengths (entries a turn answers from) and message
// sizes (bytes of every user message).
var (
	growthHistory = []int{0, 10, 100, 1000}
	growthBytes   = []int{100, 10 << 10}
)

// growthUsers is the closed-model users of a cell: each owns one
// conversation. Fewer for the heaviest cell (5 MB of history a turn).
func growthUsers(history, size int) int {
	if history*size >= 1000*(10<<10) {
		return 4
	}
	return 8
}

// growth measures a turn's cost by history length and message size: the
// instances start with memory.max_entries = history, each conversation is
// given history/2 turns first (loadtest.Prefill, not measured), then the
// users run turns that each answer from exactly that many entries and are
// trimmed back to it. History 0 is a fresh conversation per turn. Per cell:
// the instances' CPU per turn, mockllm's CPU per call, the latency, and
// the bytes of Redis's keys (MEMORY USAGE, exact) per conversation after
// the prefill (its history and its turns' idempotency records) and added
// per measured turn.
func (r *run) growth(ctx context.Context) error {
	h0 := map[int]float64{}
	for _, size := range growthBytes {
		for _, h := range growthHistory {
			g, err := r.growthCell(ctx, h, size)
			if err != nil {
				return fmt.Errorf("history %d, %d B: %w", h, size, err)
			}
			if h == 0 {
				h0[size] = g.CPUUSPerTurn
			}
			g.CPURatioToHistory0 = ratio(g.CPUUSPerTurn, h0[size])
			r.rep.Growth = append(r.rep.Growth, g)
			if g.Skipped == "" {
				r.logf("  growth history %d, %d B: %.0f turns/s, %.0f µs/turn, p99 %.2f ms, %.0f B/conversation",
					h, size, g.TurnsPerS, g.CPUUSPerTurn, g.P99MS, g.RedisBytesPerConversation)
			}
		}
	}
	return nil
}

func (r *run) growthCell(ctx context.Context, history, size int) (Growth, error) {
	g := Growth{History: history, MessageBytes: size, Users: growthUsers(history, size)}
	if r.o.Quick && history*size >= 1000*(10<<10) {
		g.Skipped = "quick run"
		return g, nil
	}
	maxEntries := max(history, 2)
	if err := r.f.startBots(ctx, botConfig{Backend: "openai", MaxEntries: maxEntries}); err != nil {
		return g, err
	}
	opts := loadtest.Options{URL: r.f.nginxURL("fleet"), Token: Key, Users: g.Users, Duration: r.o.Step / 2,
		MessageBytes: size, Seed: int64(100 + history), SessionPrefix: fmt.Sprintf("grow-%d-%d-", history, size), Turns: -1}
	if history == 0 {
		opts.Turns = 1
	}
	if history > 0 {
		pr, err := loadtest.Prefill(ctx, opts, history/2)
		if err != nil {
			return g, err
		}
		if pr.Failed > 0 {
			return g, fmt.Errorf("prefill: %d of %d turns failed: %v", pr.Failed, pr.Requests, pr.Errors)
		}
		opts.StartTurn = history / 2
	}
	used1, err := r.f.keyBytes(ctx)
	if err != nil {
		return g, err
	}
	u0, err := r.f.usage(ctx)
	if err != nil {
		return g, err
	}
	res, err := loadtest.Run(ctx, opts)
	if err != nil {
		return g, err
	}
	u1, err := r.f.usage(ctx)
	if err != nil {
		return g, err
	}
	used2, err := r.f.keyBytes(ctx)
	if err != nil {
		return g, err
	}
	w := u1.since(u0)
	g.TurnsPerS = round(res.AchievedRPS, 1)
	g.P50MS, g.P99MS, g.Errors = ms(res.Latency.P50), ms(res.Latency.P99), res.Failed
	if w.turns > 0 {
		g.CPUUSPerTurn = round(w.bots()*1e6/w.turns, 0)
		g.RedisBytesPerTurn = round(float64(used2-used1)/w.turns, 0)
	}
	if w.calls > 0 {
		g.MockCPUUSPerCall = round(w.cpu[cMock]*1e6/w.calls, 0)
	}
	if history > 0 {
		g.RedisBytesPerConversation = round(float64(used1)/float64(g.Users), 0) // Redis was empty before the prefill
	} else if w.turns > 0 {
		g.RedisBytesPerConversation = round(float64(used2-used1)/w.turns, 0) // one turn per conversation
	}
	return g, nil
}
