package loadtest

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/plot"
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
		Charts  []template.HTML
	}{
		Title:   fmt.Sprintf("loadtest %s: %s model, %s", r.Settings.Target, r.Model, r.Settings.URL),
		Summary: txt.String(),
		Rows:    r.rows(),
	}
	for _, c := range []*plot.Chart{latencyChart(r), throughputChart(r), percentileChart(r), histogramChart(r)} {
		svg, err := c.SVG()
		if err != nil {
			return err
		}
		page.Charts = append(page.Charts, svg)
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

func ms64(d time.Duration) float64 { return float64(d) / 1e6 }

// latencyChart plots p50, p99 and max latency per second.
func latencyChart(r *Result) *plot.Chart {
	c := plot.New("Latency per second (successful requests, by completion time)", "second of the measured window", "ms")
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
	s := plot.Scale{X0: 0, X1: c.XAxis(float64(n)), Y0: 0, Y1: c.YAxis(hi)}
	c.AddLine("max", "#9e9e9e", "4 3", s, xs, mx, ok)
	c.AddLine("p99", "#e65100", "", s, xs, p99, ok)
	c.AddLine("p50", "#1565c0", "", s, xs, p50, ok)
	return c
}

// throughputChart plots successes and errors per second, and the offered
// rate.
func throughputChart(r *Result) *plot.Chart {
	c := plot.New("Throughput per second (by completion time)", "second of the measured window", "req/s")
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
	s := plot.Scale{X0: 0, X1: c.XAxis(float64(n)), Y0: 0, Y1: c.YAxis(hi)}
	if r.Model == Open {
		c.AddLine(fmt.Sprintf("offered %.0f/s", r.OfferedRPS), "#9e9e9e", "4 3", s,
			[]float64{0, s.X1}, []float64{r.OfferedRPS, r.OfferedRPS}, nil)
	}
	c.AddLine("errors/s", "#c62828", "", s, xs, errS, nil)
	c.AddLine("succeeded/s", "#2e7d32", "", s, xs, okS, nil)
	return c
}

// nines maps a percentile to the "number of nines" scale: 0 → 0, 90 → 1,
// 99 → 2, 99.9 → 3.
func nines(p float64) float64 { return -math.Log10(1 - p/100) }

// percentileChart plots latency against percentile on a nines scale.
func percentileChart(r *Result) *plot.Chart {
	c := plot.New("Latency by percentile (successful requests)", "percentile", "ms")
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
	s := plot.Scale{X0: 0, X1: top, Y0: 0, Y1: c.YAxis(hi)}
	for k := 0.0; k <= top; k++ {
		label := trimZeros(fmt.Sprintf("%.5f", 100*(1-math.Pow(10, -k)))) + "%"
		c.XTicks = append(c.XTicks, plot.Tick{Pos: s.X(k), Label: label})
	}
	c.AddLine(fmt.Sprintf("latency (max %s)", fmtDuration(r.Latency.Max)), "#6a1b9a", "", s, xs, ys, nil)
	return c
}

// histogramChart draws the latency histogram on a logarithmic latency axis.
func histogramChart(r *Result) *plot.Chart {
	c := plot.New("Latency histogram (successful requests, log scale)", "latency", "requests")
	if len(r.Buckets) == 0 {
		c.Empty = "no successful request"
		return c
	}
	var hi int64
	for _, b := range r.Buckets {
		hi = max(hi, b.Count)
	}
	top := c.YAxis(float64(hi))
	lo, end := r.Buckets[0].From, r.Buckets[len(r.Buckets)-1].To
	if end <= lo {
		end = lo + time.Microsecond
	}
	llo, lhi := math.Log10(float64(max(lo, time.Microsecond))), math.Log10(float64(max(end, time.Microsecond)))
	if lhi <= llo {
		lhi = llo + 1
	}
	s := plot.Scale{X0: llo, X1: lhi, Y0: 0, Y1: top}
	for _, b := range r.Buckets {
		x0 := s.X(math.Log10(float64(max(b.From, time.Microsecond))))
		x1 := s.X(math.Log10(float64(max(b.To, time.Microsecond))))
		if len(r.Buckets) == 1 {
			x0, x1 = 0, plot.PlotW
		}
		y := s.Y(float64(b.Count))
		c.Bars = append(c.Bars, plot.Bar{X: x0, Y: y, W: math.Max(x1-x0-1, 1), H: plot.PlotH - y,
			Title: fmt.Sprintf("%s – %s: %d", fmtDuration(b.From), fmtDuration(b.To), b.Count)})
	}
	for e := math.Ceil(llo); e <= lhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if lv := math.Log10(v); lv >= llo && lv <= lhi {
				c.XTicks = append(c.XTicks, plot.Tick{Pos: s.X(lv), Label: fmtDuration(time.Duration(v))})
			}
		}
	}
	return c
}
