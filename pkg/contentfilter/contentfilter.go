// Package contentfilter screens messages against a configured word list
// (seed 002's sensitive-word audit): a message containing a listed word,
// case-insensitively, is blocked or flagged, and counted in
// botfleet_content_filter_total{source,action}. A nil *Filter lets
// everything through, so callers need not check whether one is configured.
package contentfilter

import (
	"strings"

	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Actions on a match.
const (
	// Block refuses the message.
	Block = "block"
	// Flag lets it through, to be logged and counted.
	Flag = "flag"
)

// Options configure a Filter.
type Options struct {
	// Words are the listed words; empty words are ignored.
	Words []string
	// Action is Block (the default) or Flag.
	Action string
	// Registerer takes the package's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Filter screens messages. It is safe for concurrent use.
type Filter struct {
	words   []string
	block   bool
	matches *prometheus.CounterVec
}

// New returns the filter of opts, or nil when it lists no word.
func New(opts Options) *Filter {
	f := &Filter{block: opts.Action != Flag}
	for _, w := range opts.Words {
		if w = strings.ToLower(strings.TrimSpace(w)); w != "" {
			f.words = append(f.words, w)
		}
	}
	if len(f.words) == 0 {
		return nil
	}
	f.matches = telemetry.NewVecs(opts.Registerer).Counter("botfleet_content_filter_total", "Messages that matched the content filter, by source (http, im platform) and action (block, flag).", "source", "action")
	return f
}

// Verdict is the outcome of a check.
type Verdict struct {
	// Word is the first listed word found; empty for a clean message.
	Word string
	// Blocked: the message must be refused.
	Blocked bool
}

// Check screens text from source and counts a match.
func (f *Filter) Check(source, text string) Verdict {
	if f == nil {
		return Verdict{}
	}
	lower := strings.ToLower(text)
	for _, w := range f.words {
		if strings.Contains(lower, w) {
			action := Flag
			if f.block {
				action = Block
			}
			f.matches.WithLabelValues(source, action).Inc()
			return Verdict{Word: w, Blocked: f.block}
		}
	}
	return Verdict{}
}
