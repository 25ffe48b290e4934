// Command loadtest drives a botfleet service (an instance, or the fleet
// through nginx) with conversations at a constant arrival rate (open model,
// --rate) or with concurrent users who think between turns (closed model,
// --users), checks that every conversation's turns are numbered continuously,
// and reports latency percentiles from HdrHistogram, throughput and errors by
// cause, as text and optionally as JSON and a self-contained HTML page. With
// --slo-p99 or --slo-error-rate it exits non-zero when the objective is
// broken. --target completions drives an OpenAI-compatible
// /v1/chat/completions instead of /v1/chat; --search finds the highest rate
// that holds an objective (make bench uses it). See package
// github.com/botfleet/botfleet/pkg/loadtest.
//
// Usage:
//
//	loadtest [--url http://127.0.0.1:18789] [--token KEY] [--rate 100 | --users N --think 1s]
//	         [--duration 10s] [--warmup 1s] [--sessions N] [--turns 10] [--seed N]
//	         [--json FILE] [--html FILE] [--slo-p99 800ms] [--slo-error-rate 0.01]
//	         [--target chat|completions|completions-stream|telegram] [--model mock-1] [--message-bytes N]
//	loadtest --search [--rates 500,1000,... | --rate 1000 --step-factor 1.25 --max-rate N]
//	         [--slo-p99 50ms] [--sessions-per-rps F] [--json FILE] [--markdown FILE] [--step-cmd CMD]
package main

import "github.com/botfleet/botfleet/pkg/cli"

func main() { cli.Main("loadtest", run) }
