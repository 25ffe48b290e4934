package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/history"
)

// ChaosSchemaVersion is chaos.json's schema; it changes when a key changes
// meaning or goes away.
const ChaosSchemaVersion = 1

// Verdicts of a scenario.
const (
	VerdictHeld        = "held"
	VerdictWithinBound = "within bound"
	VerdictBroken      = "not held"
)

// ChaosReport is make chaos's result: CHAOS.md and chaos.json.
type ChaosReport struct {
	Schema    int           `json:"schema"`
	Generated time.Time     `json:"generated"`
	DurationS float64       `json:"duration_s"`
	Quick     bool          `json:"quick"`
	Machine   Machine       `json:"machine"`
	Commit    Commit        `json:"commit"`
	Settings  ChaosSettings `json:"settings"`
	// Scenarios are the rows, in the order they ran.
	Scenarios []ScenarioResult `json:"scenarios"`
	// Notes are what went wrong outside a scenario.
	Notes []string `json:"notes"`
}

// ChaosSettings are the fleet and the load of every scenario.
type ChaosSettings struct {
	Instances      int      `json:"instances"`
	Backups        int      `json:"backups"`
	ChatRPS        float64  `json:"chat_rps"`
	CompletionsRPS float64  `json:"completions_rps"`
	StreamRPS      float64  `json:"stream_rps"`
	TelegramRPS    float64  `json:"telegram_rps"`
	BeforeS        float64  `json:"before_s"`
	AfterS         float64  `json:"after_s"`
	TimeoutS       float64  `json:"timeout_s"`
	Turns          int      `json:"turns"`
	MaxEntries     int      `json:"max_entries"`
	LLMLatencyMS   int      `json:"llm_latency_ms"`
	Env            []string `json:"env"`
}

// ScenarioResult is one scenario's row.
type ScenarioResult struct {
	Name  string `json:"name"`
	Fault string `json:"fault"`
	// Bound says why the fault makes failures or losses unavoidable.
	Bound string `json:"bound,omitempty"`
	// OfferedRPS is the three loads' rates together; Requests every
	// request sent, Acknowledged those answered 200.
	OfferedRPS   float64 `json:"offered_rps"`
	Requests     int     `json:"requests"`
	Acknowledged int     `json:"acknowledged"`
	// Failed counts failed requests by cause; Bad those without
	// Retry-After (no response, or a 429/5xx without the header).
	Failed     map[string]int `json:"failed"`
	Bad        int            `json:"failed_without_retry_after"`
	BadByCause map[string]int `json:"failed_without_retry_after_by_cause,omitempty"`
	// Lost, Duplicated, Reordered and Misnumbered are acknowledged turns
	// (chat and completions) as package history counts them;
	// RecordedFailed failed ones kept anyway.
	Lost           int `json:"lost"`
	Duplicated     int `json:"duplicated"`
	Reordered      int `json:"reordered"`
	Misnumbered    int `json:"misnumbered"`
	RecordedFailed int `json:"recorded_failed"`
	// IM is the Telegram events' answers; DeadLettered the IM jobs the
	// queue gave up on during the scenario (its dead-letter stream grew by
	// that many: acknowledged to the platform, never answered).
	IM           history.IMReport `json:"im"`
	DeadLettered int              `json:"dead_lettered"`
	// P99DuringMS and P99AfterMS are successful requests' P99 (send to
	// end of response) sent during the fault and after it ended.
	P99DuringMS float64 `json:"p99_during_ms"`
	P99AfterMS  float64 `json:"p99_after_ms"`
	// RecoverS is from the fault's end to the end of the last failed
	// request (0: none failed after the fault ended).
	RecoverS float64 `json:"recover_s"`
	// FaultS is how long the fault lasted; LoadS the whole load.
	FaultS float64 `json:"fault_s"`
	LoadS  float64 `json:"load_s"`
	// Held: nothing lost, doubled, reordered or misnumbered, every failure
	// with Retry-After, every event answered once, and the scenario ran.
	Held bool `json:"held"`
	// Verdict is VerdictHeld, VerdictWithinBound (held but for failures
	// without Retry-After the fault makes unavoidable, at most AllowedBad)
	// or VerdictBroken.
	Verdict    string `json:"verdict"`
	AllowedBad int    `json:"allowed_without_retry_after,omitempty"`
	// AllowedLost is how many acknowledged turns the fault may lose (or
	// misnumber or misorder: a lost turn's number goes to the next one),
	// from its bound.
	AllowedLost int `json:"allowed_lost,omitempty"`
	// Observed is what the fault saw, in words (restart times, adoption).
	Observed []string `json:"observed,omitempty"`
	// Examples are the first violations, in words.
	Examples []string `json:"examples,omitempty"`
	// Error is why the scenario could not run as described.
	Error string `json:"error,omitempty"`
}

func (s ScenarioResult) summary() string {
	if s.Error != "" && s.Requests == 0 {
		return "ERROR " + s.Error
	}
	line := fmt.Sprintf("%d requests, failed %s (%d without Retry-After), lost %d, doubled %d, reordered %d, IM %d/%d/%d, P99 %.0f/%.0f ms, recover %.1f s: %s",
		s.Requests, failedText(s.Failed), s.Bad, s.Lost, s.Duplicated, s.Reordered+s.Misnumbered, s.IM.Answered0, s.IM.Answered1, s.IM.Answered2,
		s.P99DuringMS, s.P99AfterMS, s.RecoverS, s.Verdict)
	if s.Error != "" {
		line += "; " + s.Error
	}
	return line
}

// failedText is "503: 12, timeout: 1", or "0".
func failedText(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", strings.TrimPrefix(k, "status_"), m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes chaos.json.
func (r *ChaosReport) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteMarkdown writes CHAOS.md.
func (r *ChaosReport) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# CHAOS — the fleet under real faults, its history checked\n\n")
	p("Written by `make chaos` (`bin/bench chaos`; chaos.json has the same for tools). ")
	p("Commit %s%s, %s; %d CPUs (%s), %s, %s, Redis %s, nginx %s; %.0f s%s.\n\n",
		r.Commit.ID, r.Commit.dirtyText(), r.Generated.Format(time.RFC3339), r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.Go,
		r.Machine.Redis, r.Machine.Nginx, r.DurationS, map[bool]string{true: ", quick mode", false: ""}[r.Quick])
	s := r.Settings
	p("Fleet: Redis with AOF (appendfsync everysec), mockllm (%d ms a reply between faults), %d primaries and %d backup behind nginx, a fake Telegram Bot API. ",
		s.LLMLatencyMS, s.Instances, s.Backups)
	p("Load in every scenario, open model through nginx: %.0f req/s POST /v1/chat, %.0f req/s POST /v1/chat/completions (conversation by `user`) and %.0f req/s of it streamed (`stream: true`), %.0f Telegram webhook events/s; "+
		"conversations of %d turns, every message unique; %.0f s of load before the fault and %.0f s after it; a client gives up after %.0f s. Instances run with %s.\n\n",
		s.ChatRPS, s.CompletionsRPS, s.StreamRPS, s.TelegramRPS, s.Turns, s.BeforeS, s.AfterS, s.TimeoutS, "`"+strings.Join(s.Env, "`, `")+"`")
	p("| scenario | offered req/s | requests | failed (by status) | failed without Retry-After | doubled | lost | reordered | IM answered 0×/1×/2× | P99 during | P99 after | recover | held |\n")
	p("|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|\n")
	for _, sc := range r.Scenarios {
		held := sc.Verdict
		if sc.Verdict == VerdictBroken {
			held = "**" + held + "**"
		}
		p("| %s | %.0f | %d | %s | %d | %d | %d | %d | %d / %d / %d | %s | %s | %.1f s | %s |\n",
			sc.Name, sc.OfferedRPS, sc.Requests, failedText(sc.Failed), sc.Bad, sc.Duplicated, sc.Lost, sc.Reordered+sc.Misnumbered,
			sc.IM.Answered0, sc.IM.Answered1, sc.IM.Answered2, msText(sc.P99DuringMS), msText(sc.P99AfterMS), sc.RecoverS, held)
	}
	p("\n## How to read this\n\n")
	p("Each row is one fault injected into a steady load, Jepsen-style: the history is checked, not the logs read " +
		"(package `history`). After the load, every turn the fleet acknowledged (HTTP 200) is looked up in the conversation's memory in Redis: " +
		"it must be there exactly once (else **lost** or **doubled**), with the turn number its reply gave and in the order the client sent it " +
		"(else **reordered**, which counts misnumbered turns too). Every Telegram event the webhook acknowledged must have been answered on the " +
		"fake platform exactly once (**IM answered 0×/1×/2×**: 0× and 2× are failures). **failed** counts failed requests by status " +
		"(`connection` and `timeout`: no response at all); **failed without Retry-After** are those that left the client guessing: no response, " +
		"or a 429/5xx without the header. **P99 during/after**: successful requests sent while the fault lasted and after it ended " +
		"(send to end of response; — when none succeeded). **recover**: from the fault's end to the last failure. **held**: zero in every failure column and every " +
		"event answered once; **within bound**: the same but for failures without Retry-After the fault makes unavoidable, no more than the bound its " +
		"section states; **not held**: something was lost, doubled, reordered or left unanswered, or failed beyond the bound. " +
		"A scenario whose fault makes failures unavoidable says why below, with the bound.\n\n")
	p("The machine is shared with other developers' builds and tests: latencies are upper bounds, not the fleet's capacity (see BENCHMARKS.md).\n\n")
	p("## Scenarios\n\n")
	for _, sc := range r.Scenarios {
		p("### %s\n\n%s. Fault lasted %.1f s, load %.1f s; %d of %d requests acknowledged", sc.Name, capital(sc.Fault), sc.FaultS, sc.LoadS, sc.Acknowledged, sc.Requests)
		if sc.RecordedFailed > 0 {
			p("; %d failed turns were kept anyway (recorded-but-failed: the client could not know)", sc.RecordedFailed)
		}
		p(".\n\n")
		if len(sc.BadByCause) > 0 {
			p("Failed without Retry-After: %s.\n\n", failedText(sc.BadByCause))
		}
		for _, o := range sc.Observed {
			p("Observed: %s.\n\n", o)
		}
		if sc.DeadLettered > 0 {
			p("The IM queue dead-lettered %d jobs (`bf:{q}:dead`): their events were acknowledged to the platform and never answered.\n\n", sc.DeadLettered)
		}
		if sc.Bound != "" {
			p("Unavoidable: %s", sc.Bound)
			if sc.AllowedBad > 0 {
				p(" Here: at most %d; measured %d.", sc.AllowedBad, sc.Bad)
			}
			if sc.AllowedLost > 0 {
				p(" Lost (with misnumbered and reordered): at most %d; measured %d.", sc.AllowedLost, sc.Lost+sc.Misnumbered+sc.Reordered)
			}
			p("\n\n")
		}
		if sc.Error != "" {
			p("**Error**: %s\n\n", sc.Error)
		}
		for _, e := range sc.Examples {
			p("- %s\n", e)
		}
		if len(sc.Examples) > 0 {
			p("\n")
		}
	}
	for _, n := range r.Notes {
		p("Note: %s\n\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// msText is a P99 in ms, or "—" when no request succeeded (0).
func msText(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f ms", v)
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
