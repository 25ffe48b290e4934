// Package plot draws small line and bar charts as self-contained SVG (no
// script, font or external resource), for the HTML reports of the load
// generator and the benchmark harness and for an SVG file a Markdown report
// links. Hand-written: a chart is a few paths and ticks, and the reports
// must stay single files.
package plot

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// Geometry of every chart, in SVG user units.
const (
	Width, Height = 760, 280
	padL, padR    = 64, 40
	padT, padB    = 44, 44
	// PlotW and PlotH are the plot area's size inside the axes.
	PlotW, PlotH = Width - padL - padR, Height - padT - padB
)

//go:embed chart.svg.tmpl
var chartSVG string

var chartTmpl = template.Must(template.New("chart").Parse(chartSVG))

// Chart is one chart. Build it with New, an axis and lines or bars, then
// render it with SVG or WriteFile.
type Chart struct {
	Title          string
	XLabel, YLabel string
	Width, Height  int
	Left, Top      int
	PlotW, PlotH   int
	XTicks, YTicks []Tick
	Lines          []Line
	Bars           []Bar
	// Empty is shown instead of data when there is none.
	Empty string
	// Standalone adds the xmlns attribute a separate .svg file needs.
	Standalone bool
}

// Tick is an axis mark at Pos (in plot units along its axis).
type Tick struct {
	Pos   float64
	Label string
}

// Line is one series drawn as a path.
type Line struct {
	Name, Color, Dash string
	D                 string
	LegendY           int
}

// Bar is one histogram bar, in plot units.
type Bar struct {
	X, Y, W, H float64
	Title      string
}

// New returns an empty chart.
func New(title, xLabel, yLabel string) *Chart {
	return &Chart{Title: title, XLabel: xLabel, YLabel: yLabel, Width: Width, Height: Height,
		Left: padL, Top: padT, PlotW: PlotW, PlotH: PlotH}
}

// Scale maps data coordinates to plot coordinates.
type Scale struct{ X0, X1, Y0, Y1 float64 }

// X maps a data x to the plot.
func (s Scale) X(v float64) float64 { return (v - s.X0) / (s.X1 - s.X0) * PlotW }

// Y maps a data y to the plot.
func (s Scale) Y(v float64) float64 { return PlotH - (v-s.Y0)/(s.Y1-s.Y0)*PlotH }

// AddLine adds a series; points whose ok is false break the line (ok nil:
// every point counts).
func (c *Chart) AddLine(name, color, dash string, s Scale, xs, ys []float64, ok []bool) {
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
		fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, s.X(xs[i]), s.Y(ys[i]))
		pen = true
	}
	c.Lines = append(c.Lines, Line{Name: name, Color: color, Dash: dash, D: d.String(), LegendY: 14 * len(c.Lines)})
}

// NiceTicks returns "nice" tick values (1, 2 or 5 × 10^k apart) covering
// [0, hi], at most about n of them, and their upper end.
func NiceTicks(hi float64, n int) ([]float64, float64) {
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

// Num formats an axis value compactly: 0, 0.25, 42, 12.5k, 3.2M.
func Num(v float64) string {
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

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// YAxis sets c's y ticks for [0, hi] and returns the y range's top.
func (c *Chart) YAxis(hi float64) float64 {
	ts, top := NiceTicks(hi, 5)
	s := Scale{0, 1, 0, top}
	for _, v := range ts {
		c.YTicks = append(c.YTicks, Tick{Pos: s.Y(v), Label: Num(v)})
	}
	return top
}

// XAxis sets c's x ticks for [0, hi] and returns the x range's end.
func (c *Chart) XAxis(hi float64) float64 {
	ts, top := NiceTicks(math.Max(hi, 1), 10)
	s := Scale{0, top, 0, 1}
	for _, v := range ts {
		c.XTicks = append(c.XTicks, Tick{Pos: s.X(v), Label: Num(v)})
	}
	return top
}

// SVG renders the chart as an inline <svg> element.
func (c *Chart) SVG() (template.HTML, error) {
	var b bytes.Buffer
	if err := chartTmpl.Execute(&b, c); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil // the template escaped every value
}

// WriteTo writes the chart as a standalone SVG document.
func (c *Chart) WriteTo(w io.Writer) (int64, error) {
	cc := *c
	cc.Standalone = true
	s, err := cc.SVG()
	if err != nil {
		return 0, err
	}
	n, err := io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+string(s)+"\n")
	return int64(n), err
}
