package registry

import (
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// Histogram is a distribution as Prometheus keeps one: cumulative counts at
// each upper bound. Bounds leaves +Inf out (JSON has no infinity), so
// Counts has one more element than Bounds, the last being the total.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Sum    float64   `json:"sum"`
}

// Count is the number of observations.
func (h Histogram) Count() uint64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// add adds a Prometheus histogram's buckets to h; one with other bounds
// than h's is left out (every series of one metric has the same).
func (h *Histogram) add(m *dto.Histogram) {
	var bounds []float64
	var counts []uint64
	for _, b := range m.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		bounds = append(bounds, b.GetUpperBound())
		counts = append(counts, b.GetCumulativeCount())
	}
	counts = append(counts, m.GetSampleCount())
	if h.Counts == nil {
		h.Bounds, h.Counts = bounds, make([]uint64, len(counts))
	}
	if !slices.Equal(h.Bounds, bounds) {
		return
	}
	for i, c := range counts {
		h.Counts[i] += c
	}
	h.Sum += m.GetSampleSum()
}

// since is what h observed after old (an earlier state of the same
// counters); when the counters went back (a restart) it is h whole.
func (h Histogram) since(old Histogram) Histogram {
	if !slices.Equal(h.Bounds, old.Bounds) || len(old.Counts) != len(h.Counts) || old.Count() > h.Count() {
		return h
	}
	out := Histogram{Bounds: h.Bounds, Counts: make([]uint64, len(h.Counts)), Sum: h.Sum - old.Sum}
	for i := range h.Counts {
		out.Counts[i] = h.Counts[i] - min(old.Counts[i], h.Counts[i])
	}
	return out
}

// merge adds o to h: the distributions of several instances together.
func (h *Histogram) merge(o Histogram) {
	if len(o.Counts) == 0 {
		return
	}
	if h.Counts == nil {
		h.Bounds, h.Counts = o.Bounds, make([]uint64, len(o.Counts))
	}
	if !slices.Equal(h.Bounds, o.Bounds) || len(h.Counts) != len(o.Counts) {
		return
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Sum += o.Sum
}

// Quantile estimates the q-quantile (0 < q < 1) in seconds as Prometheus's
// histogram_quantile does: linearly within the bucket it falls in, the
// highest finite bound when it falls past it. 0 with no observations.
func (h Histogram) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 || len(h.Bounds) == 0 {
		return 0
	}
	rank := q * float64(total)
	for i, c := range h.Counts {
		if float64(c) < rank {
			continue
		}
		if i == len(h.Bounds) {
			return h.Bounds[len(h.Bounds)-1]
		}
		lower, below := 0.0, uint64(0)
		if i > 0 {
			lower, below = h.Bounds[i-1], h.Counts[i-1]
		}
		in := c - below
		if in == 0 {
			return h.Bounds[i]
		}
		return lower + (h.Bounds[i]-lower)*(rank-float64(below))/float64(in)
	}
	return h.Bounds[len(h.Bounds)-1]
}
