package history

import (
	"fmt"

	"github.com/botfleet/botfleet/pkg/loadtest"
)

// IMReport counts how often the platform was sent an answer to each IM
// event.
type IMReport struct {
	// Events is every event delivered; Acknowledged those the webhook
	// answered 200.
	Events       int `json:"events"`
	Acknowledged int `json:"acknowledged"`
	// Answered0 counts acknowledged events never answered; Answered1
	// events answered once; Answered2 events answered twice or more
	// (acknowledged or not: a retry must not answer again).
	Answered0 int `json:"answered_0"`
	Answered1 int `json:"answered_1"`
	Answered2 int `json:"answered_2"`
	// Examples describe the first MaxExamples violations.
	Examples []string `json:"examples,omitempty"`
}

// Clean reports whether every acknowledged event was answered exactly once
// and none twice.
func (r *IMReport) Clean() bool { return r.Answered0+r.Answered2 == 0 }

// CheckIM judges the deliveries of IM events: calls are the webhook
// requests (several may carry the same event: a platform's retries), event
// names the event a call delivered, answers counts the platform's answers
// by event.
func CheckIM(calls []loadtest.CallRecord, event func(loadtest.CallRecord) string, answers map[string]int) IMReport {
	acked := map[string]bool{}
	var order []string
	for _, c := range calls {
		id := event(c)
		if _, seen := acked[id]; !seen {
			order = append(order, id)
			acked[id] = false
		}
		if Acknowledged(c) {
			acked[id] = true
		}
	}
	var r IMReport
	for _, id := range order {
		r.Events++
		n := answers[id]
		if acked[id] {
			r.Acknowledged++
		}
		switch {
		case n == 0 && acked[id]:
			r.Answered0++
			r.example("event %s was acknowledged and never answered", id)
		case n == 1:
			r.Answered1++
		case n >= 2:
			r.Answered2++
			r.example("event %s was answered %d times", id, n)
		}
	}
	return r
}

func (r *IMReport) example(format string, args ...any) {
	if len(r.Examples) < MaxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}
