package loadtest

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var reportHTML string

// reportTmpl renders WriteHTML's page.
var reportTmpl = template.Must(template.New("report").Parse(reportHTML))

// WriteHTML writes the result as one self-contained HTML page (inline CSS and
// SVG, no script, font or other external resource): the summary table, p50,
// p99 and maximum latency per second, achieved throughput and errors per
// second, the latency percentile distribution and the latency histogram.
func (r *Result) WriteHTML(w io.Writer) error {
	var txt strings.Builder
	_ = r.WriteText(&txt)
	page := struct {
		Title   string
		Summary string
		Rows    [][2]string
		Charts  []*svgChart
	}{
		Title:   fmt.Sprintf("loadtest %s: %s model, %s", r.Settings.Target, r.Model, r.Settings.URL),
		Summary: txt.String(),
		Rows:    r.rows(),
		Charts:  []*svgChart{latencyChart(r), throughputChart(r), percentileChart(r), histogramChart(r)},
	}
	return reportTmpl.Execute(w, page)
}

// rows is the summary table.
func (r *Result) rows() [][2]string {
	l := r.Latency
	rows := [][2]string{
		{"model", string(r.Model)},
		{"offered", fmt.Sprintf("%.1f req/s", r.OfferedRPS)},
		{"achieved", fmt.Sprintf("%.1f req/s", r.AchievedRPS)},
		{"measured window", r.Duration.String()},
		{"requests", fmt.Sprint(r.Requests)},
		{"succeeded", fmt.Sprint(r.Succeeded)},
		{"failed", fmt.Sprintf("%d (%s)", r.Failed, fmtPercent(r.ErrorRate()))},
		{"errors", r.ErrorCauses()},
		{"late", fmt.Sprint(r.Late)},
		{"p50", fmtDuration(l.P50)},
		{"p90", fmtDuration(l.P90)},
		{"p99", fmtDuration(l.P99)},
		{"p99.9", fmtDuration(l.P999)},
		{"max", fmtDuration(l.Max)},
		{"continuity", fmt.Sprintf("%d checked, %d broken", r.Continuity.Checked, r.Continuity.Broken)},
	}
	if r.Interrupted {
		rows = append(rows, [2]string{"interrupted", "yes"})
	}
	return rows
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 760, 280
	padL, padR     = 64, 40
	padT, padB     = 44, 44
	plotW, plotH   = chartW - padL - padR, chartH - padT - padB
)

// svgChart is one chart of the page, with everything precomputed for the
// template.
type svgChart struct {
	Title          string
	XLabel, YLabel string
	Width, Height  int
	Left, Top      int
	PlotW, PlotH   int
	XTicks, YTicks []tick
	Lines          []svgLine
	Bars           []svgBar
	Empty          string // shown instead of data when there is none
}

// tick is an axis mark at Pos (in plot units along its axis).
type tick struct {
	Pos   float64
	Label string
}

// svgLine is one series drawn as a path.
type svgLine struct {
	Name, Color, Dash string
	D                 string
	LegendY           int
}

// svgBar is one histogram bar.
type svgBar struct {
	X, Y, W, H float64
	Title      string
}

// newChart returns an empty chart.
func newChart(title, xLabel, yLabel string) *svgChart {
	return &svgChart{Title: title, XLabel: xLabel, YLabel: yLabel, Width: chartW, Height: chartH,
		Left: padL, Top: padT, PlotW: plotW, PlotH: plotH}
}

// scale maps data coordinates to plot coordinates.
type scale struct{ x0, x1, y0, y1 float64 }

func (s scale) x(v float64) float64 { return (v - s.x0) / (s.x1 - s.x0) * plotW }
func (s scale) y(v float64) float64 { return plotH - (v-s.y0)/(s.y1-s.y0)*plotH }

// addLine adds a series; points whose ok is false break the line.
func (c *svgChart) addLine(name, color, dash string, s scale, xs, ys []float64, ok []bool) {
	var d strings.Builder
	pen := false
	for i := range xs {
		if ok != nil && !ok[i] {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, s.x(xs[i]), s.y(ys[i]))
		pen = true
	}
	c.Lines = append(c.Lines, svgLine{Name: name, Color: color, Dash: dash, D: d.String(), LegendY: 14 * len(c.Lines)})
}

// niceTicks returns "nice" tick values (1, 2 or 5 × 10^k apart) covering
// [0, hi], at most about n of them, and their upper end.
func niceTicks(hi float64, n int) ([]float64, float64) {
	if hi <= 0 || math.IsNaN(hi) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ts []float64
	for v := 0.0; v < hi+step*0.999; v += step {
		ts = append(ts, v)
	}
	return ts, ts[len(ts)-1]
}

// fmtNum formats an axis value compactly.
func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6:
		return trimZeros(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case math.Abs(v) >= 1e4:
		return trimZeros(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return trimZeros(fmt.Sprintf("%.3g", v))
	}
}

// yAxis sets c's y ticks for [0, hi] and returns the y range's top.
func (c *svgChart) yAxis(hi float64) float64 {
	ts, top := niceTicks(hi, 5)
	s := scale{0, 1, 0, top}
	for _, v := range ts {
		c.YTicks = append(c.YTicks, tick{Pos: s.y(v), Label: fmtNum(v)})
	}
	return top
}

// timeAxis sets c's x ticks for seconds 0..n and returns the x range's end.
func (c *svgChart) timeAxis(n int) float64 {
	ts, top := niceTicks(float64(max(n, 1)), 10)
	s := scale{0, top, 0, 1}
	for _, v := range ts {
		c.XTicks = append(c.XTicks, tick{Pos: s.x(v), Label: fmtNum(v)})
	}
	return top
}

func ms64(d time.Duration) float64 { return float64(d) / 1e6 }

// latencyChart plots p50, p99 and max latency per second.
func latencyChart(r *Result) *svgChart {
	c := newChart("Latency per second (successful requests, by completion time)", "second of the measured window", "ms")
	if r.Succeeded == 0 {
		c.Empty = "no successful request"
		return c
	}
	n := len(r.Series)
	xs := make([]float64, n)
	p50, p99, mx := make([]float64, n), make([]float64, n), make([]float64, n)
	ok := make([]bool, n)
	hi := 0.0
	for i, p := range r.Series {
		xs[i] = float64(p.Second) + 0.5
		p50[i], p99[i], mx[i] = ms64(p.P50), ms64(p.P99), ms64(p.Max)
		ok[i] = p.Succeeded > 0
		hi = math.Max(hi, mx[i])
	}
	s := scale{0, c.timeAxis(n), 0, c.yAxis(hi)}
	c.addLine("max", "#9e9e9e", "4 3", s, xs, mx, ok)
	c.addLine("p99", "#e65100", "", s, xs, p99, ok)
	c.addLine("p50", "#1565c0", "", s, xs, p50, ok)
	return c
}

// throughputChart plots successes and errors per second, and the offered
// rate.
func throughputChart(r *Result) *svgChart {
	c := newChart("Throughput per second (by completion time)", "second of the measured window", "req/s")
	n := len(r.Series)
	if n == 0 {
		c.Empty = "no data"
		return c
	}
	xs := make([]float64, n)
	okS, errS := make([]float64, n), make([]float64, n)
	hi := r.OfferedRPS
	for i, p := range r.Series {
		xs[i] = float64(p.Second) + 0.5
		okS[i], errS[i] = float64(p.Succeeded), float64(p.Errors)
		hi = math.Max(hi, math.Max(okS[i], errS[i]))
	}
	s := scale{0, c.timeAxis(n), 0, c.yAxis(hi)}
	if r.Model == Open {
		c.addLine(fmt.Sprintf("offered %.0f/s", r.OfferedRPS), "#9e9e9e", "4 3", s,
			[]float64{0, s.x1}, []float64{r.OfferedRPS, r.OfferedRPS}, nil)
	}
	c.addLine("errors/s", "#c62828", "", s, xs, errS, nil)
	c.addLine("succeeded/s", "#2e7d32", "", s, xs, okS, nil)
	return c
}

// nines maps a percentile to the "number of nines" scale: 0 → 0, 90 → 1,
// 99 → 2, 99.9 → 3.
func nines(p float64) float64 { return -math.Log10(1 - p/100) }

// percentileChart plots latency against percentile on a nines scale.
func percentileChart(r *Result) *svgChart {
	c := newChart("Latency by percentile (successful requests)", "percentile", "ms")
	var xs, ys []float64
	hi := 0.0
	for _, q := range r.Percentiles {
		if q.Percentile >= 100 {
			continue
		}
		xs, ys = append(xs, nines(q.Percentile)), append(ys, ms64(q.Latency))
		hi = math.Max(hi, ms64(q.Latency))
	}
	if len(xs) < 2 {
		c.Empty = "too few successful requests"
		return c
	}
	top := math.Ceil(xs[len(xs)-1])
	s := scale{0, top, 0, c.yAxis(hi)}
	for k := 0.0; k <= top; k++ {
		label := trimZeros(fmt.Sprintf("%.5f", 100*(1-math.Pow(10, -k)))) + "%"
		c.XTicks = append(c.XTicks, tick{Pos: s.x(k), Label: label})
	}
	c.addLine(fmt.Sprintf("latency (max %s)", fmtDuration(r.Latency.Max)), "#6a1b9a", "", s, xs, ys, nil)
	return c
}

// histogramChart draws the latency histogram on a logarithmic latency axis.
func histogramChart(r *Result) *svgChart {
	c := newChart("Latency histogram (successful requests, log scale)", "latency", "requests")
	if len(r.Buckets) == 0 {
		c.Empty = "no successful request"
		return c
	}
	var hi int64
	for _, b := range r.Buckets {
		hi = max(hi, b.Count)
	}
	top := c.yAxis(float64(hi))
	lo, end := r.Buckets[0].From, r.Buckets[len(r.Buckets)-1].To
	if end <= lo {
		end = lo + time.Microsecond
	}
	llo, lhi := math.Log10(float64(max(lo, time.Microsecond))), math.Log10(float64(max(end, time.Microsecond)))
	if lhi <= llo {
		lhi = llo + 1
	}
	s := scale{llo, lhi, 0, top}
	for _, b := range r.Buckets {
		x0 := s.x(math.Log10(float64(max(b.From, time.Microsecond))))
		x1 := s.x(math.Log10(float64(max(b.To, time.Microsecond))))
		if len(r.Buckets) == 1 {
			x0, x1 = 0, plotW
		}
		y := s.y(float64(b.Count))
		c.Bars = append(c.Bars, svgBar{X: x0, Y: y, W: math.Max(x1-x0-1, 1), H: plotH - y,
			Title: fmt.Sprintf("%s – %s: %d", fmtDuration(b.From), fmtDuration(b.To), b.Count)})
	}
	for e := math.Ceil(llo); e <= lhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if lv := math.Log10(v); lv >= llo && lv <= lhi {
				c.XTicks = append(c.XTicks, tick{Pos: s.x(lv), Label: fmtDuration(time.Duration(v))})
			}
		}
	}
	return c
}
