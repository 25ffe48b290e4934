package loadtest

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is an invalid option: the field of Options, SearchOptions or
// SLO it concerns and what is wrong with it. Msg may name other fields as
// {Name}; Error spells them as Go names, a command line can spell them as
// its flags (Text), so the package alone decides what is valid and the
// caller only says it in its own words.
type FieldError struct {
	// Field is the option's Go field name, e.g. "Duration".
	Field string
	// Msg says what is wrong, e.g. "must be positive, got -1s" or
	// "(4) exceeds {MaxInflight} (2)".
	Msg string
}

// Error implements error: "Duration must be positive, got -1s".
func (e *FieldError) Error() string { return e.Text(func(f string) string { return f }) }

// Text spells the error with name mapping every field name.
func (e *FieldError) Text(name func(field string) string) string {
	msg := e.Msg
	for {
		i := strings.IndexByte(msg, '{')
		j := strings.IndexByte(msg, '}')
		if i < 0 || j < i {
			break
		}
		msg = msg[:i] + name(msg[i+1:j]) + msg[j+1:]
	}
	sep := " "
	if strings.HasPrefix(msg, ":") {
		sep = ""
	}
	return name(e.Field) + sep + msg
}

// fieldErrors collects FieldErrors.
type fieldErrors []error

func (fe *fieldErrors) add(field, format string, a ...any) {
	*fe = append(*fe, &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (fe fieldErrors) err() error { return errors.Join(fe...) }

// FieldErrors returns the FieldErrors err holds (one, or several joined),
// in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			out = append(out, fe)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}
