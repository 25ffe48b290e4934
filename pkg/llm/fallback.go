package llm

import (
	"context"
	"fmt"
	"log/slog"
)

// WithFallback returns a Backend that asks primary and, when primary fails
// for any reason other than the end of ctx, logs a warning and answers from
// fallback instead. Reply.Backend tells which one answered; Name() is the
// primary's. When both fail the error wraps both errors (errors.Is and
// errors.As see either). When ctx has ended (canceled or past its deadline)
// primary's error is returned as is. A nil logger means slog.Default().
func WithFallback(primary, fallback Backend, logger *slog.Logger) Backend {
	if logger == nil {
		logger = slog.Default()
	}
	return &fallbackBackend{primary: primary, fallback: fallback, logger: logger}
}

type fallbackBackend struct {
	primary, fallback Backend
	logger            *slog.Logger
}

func (f *fallbackBackend) Name() string { return f.primary.Name() }

func (f *fallbackBackend) Complete(ctx context.Context, req Request) (Reply, error) {
	reply, err := f.primary.Complete(ctx, req)
	if err == nil || ctx.Err() != nil {
		return reply, err
	}
	f.logger.WarnContext(ctx, "llm: primary backend failed, answering from fallback",
		"backend", f.primary.Name(), "fallback", f.fallback.Name(), "err", err)
	reply, ferr := f.fallback.Complete(ctx, req)
	if ferr != nil {
		return Reply{}, fmt.Errorf("llm: %s failed: %w; fallback %s failed: %w",
			f.primary.Name(), err, f.fallback.Name(), ferr)
	}
	return reply, nil
}
