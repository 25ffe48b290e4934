// Package confparse holds what pkg/config and pkg/healthcheck both need
// to read a configuration the same way: durations written with their unit
// (a bare number, which would silently mean nanoseconds, is refused) and
// errors told on one line.
package confparse

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ParseDuration parses v, a string such as "2s" or "500ms". Its errors show
// the value.
func ParseDuration(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%v is a bare number; write a duration with its unit, like 2s or 500ms", v)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write it like 2s or 500ms", s)
	}
	return d, nil
}

// Duration is a time.Duration read from YAML by ParseDuration.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler: only a string with a unit
// is a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 2s or 500ms", n.Line)
	}
	var v any = n.Value
	if n.ShortTag() != "!!str" {
		v = bare(n.Value)
	}
	x, err := ParseDuration(v)
	if err != nil {
		return fmt.Errorf("line %d column %d: %w", n.Line, n.Column, err)
	}
	*d = Duration(x)
	return nil
}

// bare is a YAML scalar that is not a string (a number): ParseDuration
// refuses it, showing its text.
type bare string

// OneLine returns err's message with every run of white space, newlines
// included, made one space.
func OneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
