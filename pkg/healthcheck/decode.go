package healthcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/confparse"
	"go.yaml.in/yaml/v3"
)

// file is the YAML file's shape. It is decoded once, over the defaults;
// the settings are pointers so that a target overrides only the keys it
// sets and inherits the others from defaults.
type file struct {
	Listen   string       `yaml:"listen"`
	AddrFile string       `yaml:"addr_file"`
	OnExit   string       `yaml:"on_exit"`
	Alert    Alert        `yaml:"alert"`
	Registry Registry     `yaml:"registry"`
	Defaults overrides    `yaml:"defaults"`
	Targets  []fileTarget `yaml:"targets"`
}

type fileTarget struct {
	Name      string  `yaml:"name"`
	Liveness  string  `yaml:"liveness"`
	Readiness string  `yaml:"readiness"`
	Restart   Restart `yaml:"restart"`
	overrides `yaml:",inline"`
}

// overrides are the Settings keys a section sets.
type overrides struct {
	Period           *confparse.Duration `yaml:"period"`
	Timeout          *confparse.Duration `yaml:"timeout"`
	InitialDelay     *confparse.Duration `yaml:"initial_delay"`
	Jitter           *confparse.Duration `yaml:"jitter"`
	FailureThreshold *int                `yaml:"failure_threshold"`
	SuccessThreshold *int                `yaml:"success_threshold"`
	Grace            *confparse.Duration `yaml:"grace"`
	StartupTimeout   *confparse.Duration `yaml:"startup_timeout"`
	Backoff          struct {
		Initial    *confparse.Duration `yaml:"initial"`
		Max        *confparse.Duration `yaml:"max"`
		ResetAfter *confparse.Duration `yaml:"reset_after"`
	} `yaml:"backoff"`
	Budget struct {
		Restarts *int                `yaml:"restarts"`
		Window   *confparse.Duration `yaml:"window"`
	} `yaml:"budget"`
}

// over returns s with the keys o sets replaced.
func (o overrides) over(s Settings) Settings {
	dur := func(dst *time.Duration, v *confparse.Duration) {
		if v != nil {
			*dst = time.Duration(*v)
		}
	}
	num := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	dur(&s.Period, o.Period)
	dur(&s.Timeout, o.Timeout)
	dur(&s.InitialDelay, o.InitialDelay)
	dur(&s.Jitter, o.Jitter)
	num(&s.FailureThreshold, o.FailureThreshold)
	num(&s.SuccessThreshold, o.SuccessThreshold)
	dur(&s.Grace, o.Grace)
	dur(&s.StartupTimeout, o.StartupTimeout)
	dur(&s.Backoff.Initial, o.Backoff.Initial)
	dur(&s.Backoff.Max, o.Backoff.Max)
	dur(&s.Backoff.ResetAfter, o.Backoff.ResetAfter)
	num(&s.Budget.Restarts, o.Budget.Restarts)
	dur(&s.Budget.Window, o.Budget.Window)
	return s
}

// decode reads a configuration from YAML: defaults, then the file.
func decode(b []byte) (*Config, error) {
	d := DefaultConfig()
	f := file{Listen: d.Listen, OnExit: d.OnExit, Alert: d.Alert, Registry: d.Registry}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, errors.New(keyedError(b, err))
	}
	c := &Config{Listen: f.Listen, AddrFile: f.AddrFile, OnExit: f.OnExit, Alert: f.Alert, Registry: f.Registry, Defaults: f.Defaults.over(d.Defaults)}
	for _, ft := range f.Targets {
		t := NewTarget(ft.Name, ft.Liveness, ft.overrides.over(c.Defaults))
		t.Readiness = ft.Readiness
		t.Restart = ft.Restart
		if t.Restart.Strategy == "" {
			t.Restart.Strategy = StrategyNone
		}
		if t.Restart.Dir == "" {
			t.Restart.Dir = "."
		}
		c.Targets = append(c.Targets, t)
	}
	return c, nil
}

var (
	lineRE    = regexp.MustCompile(`^line (\d+)(?: column (\d+))?: (.*)$`)
	unknownRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// keyedError makes a yaml error one line that starts with the key it is
// about, e.g. `targets[0].restart.strategi: unknown key`.
func keyedError(src []byte, err error) string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(src, &root)
	var out []string
	for _, m := range msgs {
		lm := lineRE.FindStringSubmatch(strings.TrimSpace(m))
		if lm == nil {
			out = append(out, confparse.OneLine(errors.New(m)))
			continue
		}
		line, _ := strconv.Atoi(lm[1])
		col, _ := strconv.Atoi(lm[2])
		msg := lm[3]
		name := ""
		if um := unknownRE.FindStringSubmatch(msg); um != nil {
			name, msg = um[1], "unknown key"
		}
		if key := keyAt(&root, line, col, name); key != "" {
			out = append(out, key+": "+msg)
		} else {
			out = append(out, "line "+lm[1]+": "+msg)
		}
	}
	return strings.Join(out, "; ")
}

// keyAt returns the path of the mapping key on line whose name is name
// (or, with no name, whose value starts at line and col, or the last key
// on the line), e.g. targets[0].restart.strategy.
func keyAt(n *yaml.Node, line, col int, name string) string {
	var best string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				switch {
				case name != "" && k.Line == line && k.Value == name:
					best = p
				case name == "" && col > 0 && v.Line == line && v.Column == col:
					best = p
				case name == "" && col == 0 && k.Line == line && v.Kind == yaml.ScalarNode:
					best = p
				}
				walk(v, p)
			}
		}
	}
	walk(n, "")
	return best
}
