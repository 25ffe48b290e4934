package confparse

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDuration(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m30s\n"), &v); err != nil || time.Duration(v.D) != 90*time.Second {
		t.Fatalf("1m30s: %v %v", time.Duration(v.D), err)
	}
	for in, want := range map[string]string{
		"d: 2\n":     "2 is a bare number",
		"d: 1.5\n":   "1.5 is a bare number",
		"d: soon\n":  `"soon" is not a duration`,
		"d: [1s]\n":  "want a duration",
		"d: \"3\"\n": `"3" is not a duration`,
	} {
		if err := yaml.Unmarshal([]byte(in), &v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if _, err := ParseDuration(30000); err == nil || !strings.Contains(err.Error(), "bare number") {
		t.Errorf("ParseDuration(30000): %v", err)
	}
	if got := OneLine(errors.New("a\n  b\tc ")); got != "a b c" {
		t.Errorf("OneLine: %q", got)
	}
}
