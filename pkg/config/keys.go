package config

import (
	"maps"
	"slices"
)

// Keys returns every configuration key ("server.port", ...), sorted. With
// EnvNames it tells which environment variables the bot reads, e.g. for a
// check of deployment manifests.
func Keys() []string { return slices.Sorted(maps.Keys(defaults)) }
