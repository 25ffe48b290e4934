// Package history checks a run's history, Jepsen-style: what the clients
// were told against what the fleet kept. It is the judge of make chaos
// (package bench's chaos scenarios), and works on any run of package
// loadtest that records its calls (Options.OnCall).
//
// For each conversation the checker takes the turns the fleet
// acknowledged — HTTP 200 with a whole answer (Acknowledged), in the order the client sent them (a
// conversation's turns are sent one at a time) — and the conversation's
// memory as the fleet holds it afterwards (a Source: the user entries of
// pkg/memory's list bf:{<conversation key>}:msgs, read through pkg/chat so
// that the key is resolved where keys are made). An acknowledged turn's
// message must be in memory exactly once (else it is lost or duplicated),
// its entry must carry the turn number the reply reported (else it is
// misnumbered), and the acknowledged turns must appear in the order they
// were acknowledged (else reordered). A failed request whose message is in
// memory anyway is counted as recorded-but-failed: allowed (the client
// could not know), reported.
//
// Every message of a run must be unique to its conversation and turn
// (loadtest.Options.MessageBytes does that), and a conversation must fit
// in memory (turns × 2 ≤ memory.max_entries): a trimmed entry would read
// as lost.
//
// Failures are counted by cause ("status_503", "timeout", ...). A failure
// is bad when the client was left without a way to know when to come back:
// no response at all (a timeout or a connection reset), or a 429 or a 5xx
// without Retry-After.
//
// IM events are judged by the answers the platform received: every event
// the webhook acknowledged must be answered exactly once; events answered
// twice or more are counted whether acknowledged or not.
//
// # Errors
//
// Check returns an error only when a Source fails (Redis down after the
// run); a history that breaks the rules is a Report with non-zero counts,
// never an error.
package history

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/memory"
)

// MaxExamples bounds Report.Examples.
const MaxExamples = 10

// Source reads a conversation's memory, oldest entry first; conversation is
// the client's session id (loadtest.Call.SessionID).
type Source func(ctx context.Context, conversation string) ([]memory.Entry, error)

// Report is what Check found.
type Report struct {
	// Requests is every request of the history; Acknowledged those
	// answered 200.
	Requests     int `json:"requests"`
	Acknowledged int `json:"acknowledged"`
	// Lost counts acknowledged turns missing from memory; Duplicated the
	// extra copies of acknowledged turns (a turn kept twice counts 1);
	// Reordered acknowledged turns kept before one acknowledged earlier;
	// Misnumbered acknowledged turns whose entry's turn number is not the
	// one their reply reported.
	Lost        int `json:"lost"`
	Duplicated  int `json:"duplicated"`
	Reordered   int `json:"reordered"`
	Misnumbered int `json:"misnumbered"`
	// RecordedFailed counts failed requests whose turn is in memory anyway.
	RecordedFailed int `json:"recorded_failed"`
	// Failed counts failed requests by cause; Bad those that carried no
	// Retry-After (see the package doc), BadByCause by cause.
	Failed     map[string]int `json:"failed"`
	Bad        int            `json:"bad"`
	BadByCause map[string]int `json:"bad_by_cause,omitempty"`
	// Examples describe the first MaxExamples violations.
	Examples []string `json:"examples,omitempty"`
}

// Clean reports whether nothing was lost, doubled, reordered or misnumbered.
func (r *Report) Clean() bool {
	return r.Lost+r.Duplicated+r.Reordered+r.Misnumbered == 0
}

func (r *Report) example(format string, args ...any) {
	if len(r.Examples) < MaxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// Acknowledged reports whether the fleet acknowledged c: it answered 200
// with a whole answer. A 200 whose turn breaks the client's continuity
// check is acknowledged all the same (the fleet said it was done); a 200
// whose body could not be read as an answer — a stream that ended with an
// error event or without its end — is not.
func Acknowledged(c loadtest.CallRecord) bool {
	return c.Status == http.StatusOK && c.Cause != loadtest.CauseDecode
}

// BadFailure reports whether failed request c left its client without a
// Retry-After: no response, or a 429 or 5xx without the header.
func BadFailure(c loadtest.CallRecord) bool {
	if Acknowledged(c) {
		return false
	}
	if c.Status == 0 {
		return true
	}
	return (c.Status == http.StatusTooManyRequests || c.Status >= 500) && c.RetryAfter == ""
}

// Check judges calls against the memory src reads.
func Check(ctx context.Context, calls []loadtest.CallRecord, src Source) (Report, error) {
	r := Report{Requests: len(calls), Failed: map[string]int{}, BadByCause: map[string]int{}}
	bySession := map[string][]loadtest.CallRecord{}
	for _, c := range calls {
		bySession[c.SessionID] = append(bySession[c.SessionID], c)
		if Acknowledged(c) {
			r.Acknowledged++
			continue
		}
		cause := c.Cause
		if cause == "" || cause == loadtest.CauseDecode {
			cause = fmt.Sprintf("status_%d", c.Status)
			if c.Cause != "" {
				cause += "_" + c.Cause
			}
		}
		r.Failed[cause]++
		if BadFailure(c) {
			r.Bad++
			r.BadByCause[cause]++
		}
	}
	sessions := make([]string, 0, len(bySession))
	for s := range bySession {
		sessions = append(sessions, s)
	}
	sort.Strings(sessions)
	for _, s := range sessions {
		entries, err := src(ctx, s)
		if err != nil {
			return r, fmt.Errorf("history: read conversation %s: %w", s, err)
		}
		r.conversation(s, bySession[s], entries)
	}
	return r, nil
}

// conversation checks one conversation's calls against its entries.
func (r *Report) conversation(session string, calls []loadtest.CallRecord, entries []memory.Entry) {
	slices.SortFunc(calls, func(a, b loadtest.CallRecord) int { return a.Turn - b.Turn })
	where := map[string][]int{} // user message -> its positions in memory
	for i, e := range entries {
		if e.Role == "user" {
			where[e.Content] = append(where[e.Content], i)
		}
	}
	last, lastTurn := -1, 0
	for _, c := range calls {
		at := where[c.Message]
		if !Acknowledged(c) {
			if len(at) > 0 {
				r.RecordedFailed++
			}
			continue
		}
		switch len(at) {
		case 0:
			r.Lost++
			r.example("lost: %s turn %d (reply turn %d, request %s) is not in memory", session, c.Turn, c.Reply.Turn, c.RequestID)
			continue
		case 1:
		default:
			r.Duplicated += len(at) - 1
			r.example("duplicated: %s turn %d (request %s) is in memory %d times", session, c.Turn, c.RequestID, len(at))
		}
		pos := at[0]
		if pos < last {
			r.Reordered++
			r.example("reordered: %s turn %d is kept before turn %d", session, c.Turn, lastTurn)
		}
		last, lastTurn = pos, c.Turn
		if c.Reply.Turn > 0 && entries[pos].Turn != c.Reply.Turn {
			r.Misnumbered++
			r.example("misnumbered: %s turn %d was answered as turn %d, kept as turn %d", session, c.Turn, c.Reply.Turn, entries[pos].Turn)
		}
	}
}
