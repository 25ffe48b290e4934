package plot

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// TestStandaloneSVGIsWellFormed renders a chart with two lines as a file
// and parses it back as XML.
func TestStandaloneSVGIsWellFormed(t *testing.T) {
	c := New(`RSS & goroutines <over> time`, "s", "MB")
	s := Scale{X0: 0, X1: c.XAxis(60), Y0: 0, Y1: c.YAxis(120)}
	c.AddLine("rss", "#1565c0", "", s, []float64{0, 10, 20}, []float64{50, 52, 51}, nil)
	c.AddLine("gaps", "#e65100", "4 3", s, []float64{0, 10, 20}, []float64{1, 2, 3}, []bool{true, false, true})
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	dec := xml.NewDecoder(strings.NewReader(out))
	paths := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "path" {
			paths++
		}
	}
	if paths != 2 {
		t.Errorf("%d paths, want 2", paths)
	}
	if !strings.Contains(out, `xmlns="http://www.w3.org/2000/svg"`) || !strings.Contains(out, "RSS &amp; goroutines &lt;over&gt; time") {
		t.Errorf("standalone SVG lacks its namespace or escaping:\n%s", out)
	}
	if strings.Count(out, " M") != 1 { // the second line starts again after its gap
		t.Errorf("the line with a gap must restart its pen: %s", out)
	}
}

func TestNiceTicks(t *testing.T) {
	ts, top := NiceTicks(87, 5)
	if top != 100 || len(ts) != 6 || ts[1] != 20 {
		t.Errorf("NiceTicks(87, 5) = %v, %v", ts, top)
	}
	if got := Num(12500); got != "12.5k" {
		t.Errorf("Num(12500) = %q", got)
	}
}
