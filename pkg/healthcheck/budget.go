package healthcheck

import "time"

// Budget counts restarts in a sliding window. It is not safe for concurrent
// use.
type Budget struct {
	cfg   BudgetConfig
	times []time.Time
}

// NewBudget returns a Budget with the given settings.
func NewBudget(cfg BudgetConfig) *Budget { return &Budget{cfg: cfg} }

// Allow reports whether one more restart at now stays within the budget:
// fewer than Restarts restarts in the Window before now.
func (b *Budget) Allow(now time.Time) bool { return b.InWindow(now) < b.cfg.Restarts }

// Record counts a restart at now.
func (b *Budget) Record(now time.Time) { b.times = append(b.times, now) }

// InWindow returns the number of restarts within the Window before now.
func (b *Budget) InWindow(now time.Time) int {
	cut := 0
	for cut < len(b.times) && now.Sub(b.times[cut]) >= b.cfg.Window {
		cut++
	}
	b.times = b.times[cut:]
	return len(b.times)
}

// Reset forgets every restart.
func (b *Budget) Reset() { b.times = nil }
