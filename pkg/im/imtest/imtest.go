// Package imtest runs fake IM platforms on loopback that speak the real
// wire protocols — Telegram's Bot API with getUpdates long polling,
// OneBot v11 WebSockets, DingTalk's Stream gateway, Feishu's protobuf
// event WebSocket — for tests of the bot's stream modes. Each records
// what the bot sent it, and the protocol violations it saw.
package imtest

import (
	"fmt"
	"sync"
	"time"
)

// Sent is one message a fake platform received from the bot.
type Sent struct {
	// To is the id of the message replied to (or the chat when none);
	// ID the platform's id of the sent message, where it gives one.
	To, ID string
	// Chat is the chat, group or user it went to.
	Chat string
	// Text is the text; Kind the platform's message type (text,
	// markdown, interactive, post…); Body the raw request.
	Text, Kind string
	Body       []byte
	At         time.Time
}

// record is a goroutine-safe list of sends with a change signal, and of
// the protocol violations a fake saw.
type record struct {
	mu       sync.Mutex
	sent     []Sent
	problems []string
	changed  chan struct{}
}

// violation records a request the real platform would refuse, or a rule
// of its protocol broken.
func (r *record) violation(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// Problems are the protocol violations seen so far.
func (r *record) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

func newRecord() *record { return &record{changed: make(chan struct{})} }

func (r *record) add(s Sent) {
	s.At = time.Now()
	r.mu.Lock()
	r.sent = append(r.sent, s)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Sent returns every message sent so far.
func (r *record) Sent() []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sent(nil), r.sent...)
}

// To returns the messages sent in reply to message id.
func (r *record) To(id string) []Sent {
	var out []Sent
	for _, s := range r.Sent() {
		if s.To == id {
			out = append(out, s)
		}
	}
	return out
}

// Wait waits until cond holds over the sends, or the deadline passes; it
// reports whether cond held.
func (r *record) Wait(d time.Duration, cond func([]Sent) bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, ch := cond(r.sent), r.changed
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}
