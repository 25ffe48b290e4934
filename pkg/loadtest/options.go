package loadtest

import (
	"cmp"
	"math"
	"net/http"
	"time"
)

// Model names how load is generated.
type Model string

const (
	// Open is the open model: a constant arrival rate (Options.Rate),
	// independent of how fast the server answers.
	Open Model = "open"
	// Closed is the closed model: Options.Users users, each waiting for its
	// answer and thinking before its next request.
	Closed Model = "closed"
)

// Defaults of Options; a zero field takes these values.
const (
	// DefaultURL is the base URL of the local fleet's nginx.
	DefaultURL = "http://127.0.0.1:18789"
	// DefaultDuration is the length of the measured window.
	DefaultDuration = 10 * time.Second
	// DefaultTurns is the length of a conversation before a fresh one
	// replaces it.
	DefaultTurns = 10
	// DefaultTimeout bounds each request, from its actual send to the end of
	// its response body.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxInflight caps the requests waiting for an answer at once.
	DefaultMaxInflight = 10000
	// DefaultLateAfter is how far behind its intended time a request may go
	// out before it counts as late.
	DefaultLateAfter = 10 * time.Millisecond
	// DefaultProgressEvery is the interval of Options.Progress calls.
	DefaultProgressEvery = time.Second
	// MinOpenSessions is the fewest conversations the open model uses by
	// default.
	MinOpenSessions = 10
	// MinMessageBytes and MaxMessageBytes bound Options.MessageBytes.
	MinMessageBytes = 32
	MaxMessageBytes = 1 << 20
)

// Options configures Run. Exactly one of Rate (open model) and Users (closed
// model) must be positive; every other zero field takes its documented
// default.
type Options struct {
	// Target builds each request and judges its response. Default: the chat
	// target of URL and Token (NewTarget("chat", URL, Token)).
	Target Target
	// URL is the service's base URL, used by the default Target. Default
	// DefaultURL.
	URL string
	// Token is the Bearer token of the default Target; empty sends no
	// Authorization header.
	Token string

	// Rate selects the open model: requests per second, intended at
	// start + i/Rate.
	Rate float64
	// Users selects the closed model: the number of concurrent users.
	Users int
	// Think is the closed model's pause between a user's answer and its next
	// request. Default 0. Only valid with Users.
	Think time.Duration

	// Duration is the measured window, after Warmup. Default DefaultDuration.
	Duration time.Duration
	// Warmup runs load before the measured window; requests intended (open)
	// or started (closed) during it are sent but not counted. Default 0.
	Warmup time.Duration

	// Sessions is the number of conversations in use at once. In the open
	// model it bounds the requests in flight (one per conversation); default
	// max(ceil(Rate), MinOpenSessions), i.e. room for a second of latency.
	// In the closed model each user owns Sessions/Users of them and must own
	// at least one; default Users.
	Sessions int
	// Turns is how many turns a conversation runs before a fresh one takes its
	// place. Default DefaultTurns; negative means never.
	Turns int
	// Seed makes a run reproducible: the same seed gives the same message
	// texts and, with the same SessionPrefix, the same session ids in the same
	// order. 0 picks a time-based seed (reported in Result.Settings).
	Seed int64
	// SessionPrefix starts every session id. Default "lt-" plus 8 random hex
	// digits and "-", so each run's conversations are fresh and start at turn
	// 1 even with a fixed Seed.
	SessionPrefix string

	// MessageBytes, when positive, makes every message exactly that many
	// bytes long and unique to its conversation and turn (so no response
	// cache answers it): the turn's text, a mark naming the conversation
	// and turn, and filler words. Default 0: the texts as they are (a few
	// dozen bytes, from a fixed list). At least MinMessageBytes, at most
	// MaxMessageBytes.
	MessageBytes int
	// StartTurn is the number of turns every initial conversation (the
	// first Sessions of them) already has — from Prefill with the same
	// Seed and SessionPrefix: the first reply each expects is StartTurn+1,
	// and their next messages continue from there. Conversations that
	// replace them start fresh. Default 0.
	StartTurn int

	// Timeout bounds each request from its actual send to the end of its
	// response body; an expired one fails with cause "timeout". Default
	// DefaultTimeout.
	Timeout time.Duration
	// MaxInflight caps the requests waiting for an answer at once. Default
	// DefaultMaxInflight.
	MaxInflight int
	// LateAfter is how far behind its intended send time an open-model request
	// may go out before it counts as late. Default DefaultLateAfter.
	LateAfter time.Duration

	// Client sends the requests. Default: NewClient sized for the run's
	// concurrency.
	Client *http.Client

	// Progress, when set, is called every ProgressEvery with a snapshot of the
	// run, from a goroutine of its own (never concurrently with itself).
	Progress func(Snapshot)
	// ProgressEvery is the interval of Progress calls. Default
	// DefaultProgressEvery.
	ProgressEvery time.Duration

	// OnCall, when set, is called after every request that completed or
	// failed (warm-up included; one that ctx interrupted is not) with what
	// was sent and what came back, from the goroutine that sent it, so it
	// must be safe for concurrent use. It is the run's history, as a
	// checker such as package history verifies it.
	OnCall func(CallRecord)

	// OnStatus, when set, is called once for the first response of each
	// status code the target does not accept (say 401), from the goroutine
	// that received it, so that a caller can explain it while the run goes
	// on instead of after thousands of the same failure.
	OnStatus func(code int)
}

// Model returns the load model the options select.
func (o *Options) Model() Model {
	if o.Users > 0 {
		return Closed
	}
	return Open
}

// Validate reports every invalid field of o (as FieldErrors joined), or
// nil; o itself is not changed. Run applies the same checks.
func (o Options) Validate() error { return o.validate() }

// validate checks o and fills in the defaults.
func (o *Options) validate() error {
	var fe fieldErrors
	switch {
	case o.Rate > 0 && o.Users > 0:
		fe.add("Rate", "(open model) and {Users} (closed model) are mutually exclusive")
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		fe.add("Rate", "must be positive, got %v", o.Rate)
	case o.Users < 0:
		fe.add("Users", "must be at least 1, got %d", o.Users)
	case o.Rate == 0 && o.Users == 0:
		fe.add("Rate", ": set {Rate} (open model) or {Users} (closed model)")
	}
	if o.Think > 0 && o.Users == 0 {
		fe.add("Think", "applies to the closed model only ({Users})")
	}
	// None of these may be negative.
	for _, n := range []struct {
		field, want string
		negative    bool
		v           any
	}{
		{"Think", "must not be negative", o.Think < 0, o.Think},
		{"Duration", "must be positive", o.Duration < 0, o.Duration},
		{"Warmup", "must not be negative", o.Warmup < 0, o.Warmup},
		{"Sessions", "must be positive", o.Sessions < 0, o.Sessions},
		{"Timeout", "must be positive", o.Timeout < 0, o.Timeout},
		{"MaxInflight", "must be at least 1", o.MaxInflight < 0, o.MaxInflight},
		{"LateAfter", "must not be negative", o.LateAfter < 0, o.LateAfter},
	} {
		if n.negative {
			fe.add(n.field, "%s, got %v", n.want, n.v)
		}
	}
	if o.MessageBytes < 0 || o.MessageBytes > MaxMessageBytes {
		fe.add("MessageBytes", "must be in 0..%d, got %d", MaxMessageBytes, o.MessageBytes)
	} else if o.MessageBytes > 0 && o.MessageBytes < MinMessageBytes {
		fe.add("MessageBytes", "must be at least %d (room for the unique mark), got %d", MinMessageBytes, o.MessageBytes)
	}
	if o.StartTurn < 0 {
		fe.add("StartTurn", "must not be negative, got %d", o.StartTurn)
	}
	if len(fe) > 0 {
		return fe.err()
	}

	o.URL = cmp.Or(o.URL, DefaultURL)
	o.Duration = cmp.Or(o.Duration, DefaultDuration)
	o.Turns = cmp.Or(o.Turns, DefaultTurns)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.MaxInflight = cmp.Or(o.MaxInflight, DefaultMaxInflight)
	o.LateAfter = cmp.Or(o.LateAfter, DefaultLateAfter)
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	if o.Sessions == 0 {
		if o.Users > 0 {
			o.Sessions = o.Users
		} else {
			o.Sessions = max(int(math.Ceil(o.Rate)), MinOpenSessions)
		}
	}
	if o.Users > 0 {
		if o.Sessions < o.Users {
			fe.add("Sessions", "(%d) must be at least {Users} (%d): every user needs a conversation of its own", o.Sessions, o.Users)
		}
		if o.Users > o.MaxInflight {
			fe.add("Users", "(%d) exceeds {MaxInflight} (%d)", o.Users, o.MaxInflight)
		}
	}
	if o.Target == nil {
		t, err := NewTarget("chat", o.URL, o.Token)
		if err != nil {
			fe.add("URL", ": %v", err)
		}
		o.Target = t
	}
	return fe.err()
}

// concurrency is the most requests the run can have in flight.
func (o *Options) concurrency() int {
	if o.Users > 0 {
		return o.Users
	}
	return min(o.Sessions, o.MaxInflight)
}
