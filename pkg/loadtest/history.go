package loadtest

import "time"

// CallRecord is one request as Options.OnCall sees it: the call, when it
// went out and came back, and what the server answered.
type CallRecord struct {
	Call
	// Sent and Done are when the request went out and when its response
	// ended (or it failed).
	Sent, Done time.Time
	// Status is the response's HTTP status; 0 when none came (a
	// connection error or a timeout).
	Status int
	// Cause is "" for a success, else the failure's cause as in
	// Result.Errors ("status_503", "timeout", "connection", ...).
	Cause string
	// RetryAfter is the response's Retry-After header, empty when absent.
	RetryAfter string
	// RequestID is the response's X-Request-Id header (nginx's or the
	// bot's request id), empty when absent.
	RequestID string
	// Reply is what the target read from a successful response.
	Reply Reply
}

// OK reports whether the request succeeded.
func (c CallRecord) OK() bool { return c.Cause == "" }
