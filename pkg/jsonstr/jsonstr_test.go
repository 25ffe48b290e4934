package jsonstr

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\x1f\n\r\t", "ünï 日本 你好", "\u2028\u2029", "bad\xffutf8", "<b>&</b>"} {
		b := Append([]byte("x"), s)
		var got string
		if err := json.Unmarshal(b[1:], &got); err != nil {
			t.Fatalf("Append(%q) = %s: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want {
			t.Errorf("round trip of %q = %q", s, got)
		}
		if b[0] != 'x' {
			t.Errorf("Append(%q) overwrote what b held", s)
		}
	}
}
