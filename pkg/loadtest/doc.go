// Package loadtest is botfleet's load generator: it drives a chat service with
// conversations whose turns are sent strictly in order, checks that the
// service numbers every turn continuously, and measures latency honestly.
//
// Two load models are supported:
//
//   - Open (Options.Rate): requests arrive at a constant rate whatever the
//     server does, as real users do. Request i is intended at
//     start + i/Rate and its latency is timed from that intended instant, not
//     from when it actually went out, so a server that stalls is charged for
//     the whole delay it caused (coordinated omission corrected, as wrk2
//     does). A request that could not go out on time — no conversation was
//     idle, or Options.MaxInflight requests were already waiting — is sent as
//     soon as possible and counted in Result.Late; one still unsent when the
//     measured window ends is counted as failed with cause "dropped". Nothing
//     is silently skipped.
//   - Closed (Options.Users): N users each send a request, wait for its
//     answer, think for Options.Think and repeat, as JMeter's thread groups
//     do. Latency is timed from the actual send.
//
// Every request belongs to one of Options.Sessions conversations; a
// conversation's next turn is sent only after its previous one was answered,
// and after Options.Turns turns it is replaced by a fresh conversation. What
// a request looks like is up to a Target (NewTarget: "chat" for POST /v1/chat,
// "completions" for an OpenAI-compatible POST /v1/chat/completions), so other
// endpoints can be driven the same way.
//
// Run returns a Result: HdrHistogram latency percentiles of the successful
// requests, offered and achieved rates, errors by cause, continuity checks and
// a per-second time series; Result.WriteText, Result.WriteJSON and
// Result.WriteHTML render it and SLO.Check judges it.
//
// Search runs a rate search: open-model steps at rising rates, each with its
// own warm-up and fresh conversations, until one breaks the objective (p99
// above a bound, any error, an achieved rate below the offered one or
// requests sent late), and reports the highest rate that held.
package loadtest
