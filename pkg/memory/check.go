package memory

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/botfleet/botfleet/pkg/telemetry"
)

// Check tells whether the store can take a turn now, in one round trip
// (PING and INFO memory): nil, ErrUnavailable when Redis does not answer,
// or ErrFull when it is at maxmemory with the noeviction policy and so
// refuses every write. It is what an instance's readiness reports, and it
// sets the store-state gauge (botfleet_memory_store_state).
func (s *Store) Check(ctx context.Context) error {
	pipe := s.rdb.Pipeline()
	ping := pipe.Ping(ctx)
	info := pipe.Info(ctx, "memory")
	_, _ = pipe.Exec(ctx)
	err := ping.Err()
	switch {
	case err != nil:
		err = storeError(err)
	case full(info.Val()):
		err = ErrFull
	}
	s.setState(err)
	return err
}

// full reads INFO memory: used_memory at or over a maxmemory that evicts
// nothing.
func full(info string) bool {
	var used, limit int64
	var policy string
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "used_memory":
			used, _ = strconv.ParseInt(v, 10, 64)
		case "maxmemory":
			limit, _ = strconv.ParseInt(v, 10, 64)
		case "maxmemory_policy":
			policy = v
		}
	}
	return limit > 0 && used >= limit && policy == "noeviction"
}

// storeStates are the values of botfleet_memory_store_state's state label.
var storeStates = []string{"ok", "full", "unavailable"}

func (s *Store) setState(err error) {
	state := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrFull):
		state = "full"
	default:
		state = "unavailable"
	}
	telemetry.SetState(s.metrics.state, storeStates, state)
}
