// Package fault classifies errors once, where they are made, so that every
// caller answers them alike: the HTTP API with a status, a code and
// Retry-After; the IM queue by retrying what is temporary and
// dead-lettering the rest.
//
// A package that fails in a way its callers must tell apart declares its
// sentinel errors with New (errors.Is keeps working, the sentinel is a
// pointer) or gives its error type a Fault method. Of finds the
// classification anywhere in an error's chain; an error without one is an
// internal error, temporary (a retry may well succeed), and the end of a
// context is a timeout.
package fault

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Error is a classified failure. Its Message is safe to show to clients:
// it never holds a secret or a stored message.
type Error struct {
	// Status is the HTTP status the failure is answered with.
	Status int
	// Code is the stable machine-readable code, e.g. "store_unavailable".
	Code string
	// Message says what went wrong, for people.
	Message string
	// Temporary is true when the same request may succeed later.
	Temporary bool
	// RetryAfter is when to try again (429 and 503 send it); 0 means one
	// second.
	RetryAfter time.Duration
}

// New returns a classified error, for package-level sentinels:
//
//	var ErrBusy = fault.New(http.StatusServiceUnavailable, "conversation_busy", "the conversation is busy; retry", fault.Retry(time.Second))
func New(status int, code, message string, opts ...Option) *Error {
	e := &Error{Status: status, Code: code, Message: message}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Option sets a property of New's error.
type Option func(*Error)

// Retry marks the error temporary, to be retried after d.
func Retry(d time.Duration) Option {
	return func(e *Error) { e.Temporary, e.RetryAfter = true, d }
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Fault returns e itself; it makes *Error a Classifier.
func (e *Error) Fault() Error { return *e }

// With returns an error classified as e but saying msg, which errors.Is
// still matches to e: for a sentinel whose callers need the detail.
func (e *Error) With(msg string) error { return &detailed{e, msg} }

type detailed struct {
	e   *Error
	msg string
}

func (d *detailed) Error() string { return d.e.Code + ": " + d.msg }
func (d *detailed) Unwrap() error { return d.e }
func (d *detailed) Fault() Error  { f := *d.e; f.Message = d.msg; return f }

// Classifier is an error that knows its classification, computed (for
// instance a Retry-After read from a backend's answer).
type Classifier interface {
	error
	Fault() Error
}

// Internal is what Of returns for an error nobody classified.
var Internal = Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Temporary: true}

// Timeout is what Of returns for the end of a context.
var Timeout = Error{Status: http.StatusServiceUnavailable, Code: "timeout", Message: "the request did not finish in time", Temporary: true, RetryAfter: time.Second}

// Of returns the classification of err: the first Classifier in its chain,
// else Timeout for a context's end, else Internal. Of(nil) is the zero
// Error.
func Of(err error) Error {
	if err == nil {
		return Error{}
	}
	var c Classifier
	if errors.As(err, &c) {
		return c.Fault()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Timeout
	}
	return Internal
}

// Temporary reports whether a retry of what failed with err may succeed.
func Temporary(err error) bool { return Of(err).Temporary }

// RedisFull reports whether err is Redis refusing a write because it
// reached maxmemory with the noeviction policy ("OOM command not allowed"),
// so that packages on Redis can tell a full store from a dead one.
func RedisFull(err error) bool {
	return err != nil && strings.Contains(err.Error(), "OOM command not allowed")
}
