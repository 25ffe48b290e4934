package telemetry

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestVecsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := NewVecs(reg)
	c := v.Counter("t_events_total", "Events by kind.", "kind")
	g := v.Gauge("t_level", "Level by a and b.", "a", "b")
	h := v.Histogram("t_wait_seconds", "Wait.", []float64{.5, 1}, "outcome")
	c.WithLabelValues("x").Add(2)
	g.WithLabelValues("1", "2").Set(3)
	h.WithLabelValues("ok").Observe(.7)

	want := `
# HELP t_events_total Events by kind.
# TYPE t_events_total counter
t_events_total{kind="x"} 2
# HELP t_level Level by a and b.
# TYPE t_level gauge
t_level{a="1",b="2"} 3
# HELP t_wait_seconds Wait.
# TYPE t_wait_seconds histogram
t_wait_seconds_bucket{outcome="ok",le="0.5"} 0
t_wait_seconds_bucket{outcome="ok",le="1"} 1
t_wait_seconds_bucket{outcome="ok",le="+Inf"} 1
t_wait_seconds_sum{outcome="ok"} 0.7
t_wait_seconds_count{outcome="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	defer func() {
		if recover() == nil {
			t.Error("a second t_events_total registered without a panic")
		}
	}()
	v.Counter("t_events_total", "Events by kind.", "kind")
}

func TestVecsNilRegisterer(t *testing.T) {
	c := NewVecs(nil).Counter("t_events_total", "Events.", "kind")
	c.WithLabelValues("x").Inc()
	if n := testutil.ToFloat64(c.WithLabelValues("x")); n != 1 {
		t.Errorf("unregistered counter = %v, want 1", n)
	}
}

func TestSetState(t *testing.T) {
	g := NewVecs(nil).Gauge("t_state", "State.", "target", "state")
	states := []string{"up", "down", "gone"}
	lead := make([]string, 1, 4) // room to append: SetState must not write into it
	lead[0] = "a"
	SetState(g, states, "up", lead...)
	SetState(g, states, "down", lead...)
	for _, s := range states {
		want := 0.0
		if s == "down" {
			want = 1
		}
		if got := testutil.ToFloat64(g.WithLabelValues("a", s)); got != want {
			t.Errorf("state %s = %v, want %v", s, got, want)
		}
	}
	if n := testutil.CollectAndCount(g); n != len(states) {
		t.Errorf("%d series, want %d", n, len(states))
	}
	if lead[:2][1] != "" {
		t.Errorf("SetState wrote %q past its labels", lead[:2][1])
	}
}
