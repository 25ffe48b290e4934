package defaults_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
)

type options struct {
	Prefix    string
	TTL       time.Duration
	Workers   int
	Ratio     float64
	Uses      uint
	Types     []string
	Logger    *slog.Logger
	NoDefault int
	hidden    int
}

func TestFillSetsUnsetFieldsOnly(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	d := options{Prefix: "bf", TTL: time.Minute, Workers: 4, Ratio: 0.5, Uses: 3, Types: []string{"a"}, Logger: logger, hidden: 9}

	var zero options
	defaults.Fill(&zero, d)
	if zero.Prefix != "bf" || zero.TTL != time.Minute || zero.Workers != 4 || zero.Ratio != 0.5 || zero.Uses != 3 ||
		len(zero.Types) != 1 || zero.Logger != logger || zero.hidden != 0 {
		t.Errorf("zero options filled to %+v", zero)
	}

	negative := options{TTL: -time.Second, Workers: -1, Ratio: -0.1, NoDefault: -5}
	defaults.Fill(&negative, d)
	if negative.TTL != time.Minute || negative.Workers != 4 || negative.Ratio != 0.5 {
		t.Errorf("negative numbers filled to %+v, want the defaults", negative)
	}
	if negative.NoDefault != -5 {
		t.Errorf("a field without a default became %d, want it left at -5", negative.NoDefault)
	}

	set := options{Prefix: "x", TTL: time.Second, Workers: 1, Ratio: 0.1, Uses: 1, Types: []string{"b", "c"}}
	defaults.Fill(&set, d)
	if set.Prefix != "x" || set.TTL != time.Second || set.Workers != 1 || set.Ratio != 0.1 || set.Uses != 1 || len(set.Types) != 2 {
		t.Errorf("set options changed to %+v", set)
	}
}
