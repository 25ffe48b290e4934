package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// SchemaVersion is bench.json's "schema"; it changes only when a key
// changes meaning or goes away (new keys may appear without it).
const SchemaVersion = 1

// Report is one run of the harness: bench.json. Its keys are stable and
// documented in the README (Performance); every duration is in
// milliseconds (_ms), every CPU figure in microseconds (_us) or cores.
type Report struct {
	Schema    int       `json:"schema"`
	Generated time.Time `json:"generated_at"`
	Quick     bool      `json:"quick"`
	DurationS float64   `json:"duration_s"`
	Commit    Commit    `json:"commit"`
	Machine   Machine   `json:"machine"`
	Settings  Settings  `json:"settings"`

	// Searches are the open-model sustained-rate searches: "baseline"
	// (nginx → mockllm), "openai", "builtin" (nginx → 2 instances) and
	// "openai_1_instance" (nginx → 1 instance).
	Searches []Search `json:"searches"`
	// Overhead is the same closed-model load straight at mockllm and
	// through nginx → bot → mockllm, per concurrency.
	Overhead []Overhead `json:"overhead"`
	// Streaming is the same streamed completions straight at mockllm and
	// through nginx → bot → mockllm, per concurrency.
	Streaming []Streaming `json:"streaming"`
	// Console is the fleet under the same load without and with an admin
	// console open.
	Console *Console `json:"console"`
	// Growth is the cost of a turn by history length and message size.
	Growth []Growth `json:"growth"`
	// Scaling is one instance against two.
	Scaling *Scaling `json:"scaling"`
	// Users is the seeds' 200-user closed-model run.
	Users *Users `json:"users"`
	// ColdStart is exec to the first 200 on /ready.
	ColdStart *ColdStart `json:"cold_start"`
	// Soak is the long run at half the sustained rate.
	Soak *Soak `json:"soak"`
	// GoBenchmarks are the Go benchmarks of the turn path.
	GoBenchmarks []GoBenchmark `json:"go_benchmarks"`
	// Redis is what a turn costs Redis on each topology (row redis).
	Redis *RedisCapacity `json:"redis_capacity"`
	// RedisRoundTrips is what TestTurnsAreTwoRoundTrips counted (0: not
	// run or failed; see Notes).
	RedisRoundTrips int `json:"redis_round_trips"`
	// Pending are rows that land later, with the reason.
	Pending []Pending `json:"pending"`
	// Notes are what went wrong or was skipped, in words.
	Notes []string `json:"notes"`
}

// Commit is the code the run measured.
type Commit struct {
	ID    string `json:"id"`
	Dirty bool   `json:"dirty"`
}

// dirtyText is what the reports say after the commit's id when the tree
// had uncommitted changes.
func (c Commit) dirtyText() string {
	if c.Dirty {
		return " (with uncommitted changes)"
	}
	return ""
}

// Machine is where the run ran.
type Machine struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	Redis       string `json:"redis"`
	Nginx       string `json:"nginx"`
}

// Settings are the run's knobs.
type Settings struct {
	StepS          float64 `json:"step_s"`
	WarmupS        float64 `json:"warmup_s"`
	PauseS         float64 `json:"pause_s"`
	LadderStart    float64 `json:"ladder_start_rps"`
	LadderFactor   float64 `json:"ladder_factor"`
	SLOP99MS       float64 `json:"slo_p99_ms"`
	MaxLate        float64 `json:"max_late"`
	Turns          int     `json:"turns"`
	MaxEntries     int     `json:"max_entries"`
	SessionsPerRPS float64 `json:"sessions_per_rps"`
	Instances      int     `json:"instances"`
}

// Search is one rate search and what was measured at its highest held
// step.
type Search struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	Target    string `json:"target"`
	Backend   string `json:"backend,omitempty"`
	Instances int    `json:"instances"`
	// MaxSustainedRPS is the highest rate that held; RatioToBaseline is it
	// over the baseline's of the same run.
	MaxSustainedRPS float64 `json:"max_sustained_rps"`
	RatioToBaseline float64 `json:"ratio_to_baseline"`
	// MeasuredAtRPS is the step the figures below are of: the highest
	// that held, or the first when none did.
	MeasuredAtRPS float64 `json:"measured_at_rps"`
	// P50MS and P99MS are the latency at that step.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	// CPUUSPerTurn is the instances' CPU time (user + system, /proc) per
	// turn served in the measured window of that step; ProfileCPUUSPerTurn
	// the first instance's CPU profile samples per turn it served while
	// profiled. 0 for the baseline.
	CPUUSPerTurn        float64 `json:"cpu_us_per_turn"`
	ProfileCPUUSPerTurn float64 `json:"profile_cpu_us_per_turn"`
	// MachineCPUUSPerRequest is the CPU of every component per request
	// (turn), and RatioToBaselineCPU it over the baseline's.
	MachineCPUUSPerRequest float64 `json:"machine_cpu_us_per_request"`
	RatioToBaselineCPU     float64 `json:"ratio_to_baseline_cpu"`
	// Cores is the cores each component used in that window: bots,
	// nginx, redis, mockllm, loadgen, and the machine's busy and steal.
	Cores map[string]float64 `json:"cores"`
	// RSSBytes is each instance's resident memory at the step's end.
	RSSBytes []int `json:"rss_bytes"`
	// Profile is the CPU profile file and its top functions.
	Profile string  `json:"profile,omitempty"`
	Top     []TopFn `json:"top"`
	// CPUByArea is the profile's CPU by part of a turn, in percent.
	CPUByArea map[string]float64 `json:"cpu_by_area_pct"`
	Steps     []StepRow          `json:"steps"`
}

// StepRow is one step of a search.
type StepRow struct {
	RateRPS     float64  `json:"rate_rps"`
	AchievedRPS float64  `json:"achieved_rps"`
	P50MS       float64  `json:"p50_ms"`
	P99MS       float64  `json:"p99_ms"`
	P999MS      float64  `json:"p999_ms"`
	MaxMS       float64  `json:"max_ms"`
	Errors      int64    `json:"errors"`
	Late        int64    `json:"late"`
	Held        bool     `json:"held"`
	Broken      []string `json:"broken"`
}

// TopFn is one function of a CPU profile.
type TopFn struct {
	Function string  `json:"function"`
	FlatPct  float64 `json:"flat_pct"`
	CumPct   float64 `json:"cum_pct"`
}

// Overhead is one concurrency of the overhead table.
type Overhead struct {
	Concurrency int     `json:"concurrency"`
	Direct      Latency `json:"direct"`
	Fleet       Latency `json:"fleet"`
	// AddedP50MS and AddedP99MS are the fleet's minus the direct ones.
	AddedP50MS float64 `json:"added_p50_ms"`
	AddedP99MS float64 `json:"added_p99_ms"`
	// RatioRPS is the fleet's throughput over the direct one.
	RatioRPS float64 `json:"ratio_rps"`
	// Controlled is false when the direct p99 passed twice the one of
	// concurrency 1: the machine, not the fleet, then shapes the tail.
	Controlled bool `json:"controlled"`
}

// Latency is a closed-model run's throughput and latency.
type Latency struct {
	RPS    float64 `json:"rps"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	Errors int64   `json:"errors"`
}

// Growth is one cell of the cost-growth table.
type Growth struct {
	History      int     `json:"history"`
	MessageBytes int     `json:"message_bytes"`
	Users        int     `json:"users"`
	TurnsPerS    float64 `json:"turns_per_s"`
	CPUUSPerTurn float64 `json:"cpu_us_per_turn"`
	// MockCPUUSPerCall is mockllm's CPU per call: the work itself.
	MockCPUUSPerCall float64 `json:"mockllm_cpu_us_per_call"`
	P50MS            float64 `json:"p50_ms"`
	P99MS            float64 `json:"p99_ms"`
	Errors           int64   `json:"errors"`
	// RedisBytesPerConversation is the bytes of Redis's keys (MEMORY
	// USAGE) per conversation after the prefill: its history and its
	// turns' idempotency records; RedisBytesPerTurn what a measured turn
	// added.
	RedisBytesPerConversation float64 `json:"redis_bytes_per_conversation"`
	RedisBytesPerTurn         float64 `json:"redis_bytes_per_turn"`
	// CPURatioToHistory0 is CPUUSPerTurn over the history-0 cell's of the
	// same message size.
	CPURatioToHistory0 float64 `json:"cpu_ratio_to_history0"`
	Skipped            string  `json:"skipped,omitempty"`
}

// Scaling is one instance against two through nginx.
type Scaling struct {
	OneInstanceRPS  float64 `json:"one_instance_rps"`
	TwoInstancesRPS float64 `json:"two_instances_rps"`
	Ratio           float64 `json:"ratio"`
	// TurnsPerCoreS is 1 s over the instance CPU per turn: how many turns
	// one core of instance CPU serves; MachineTurnsPerCoreS the same for
	// the whole machine's CPU per turn (nginx, Redis, mockllm, loadgen).
	TurnsPerCoreS        float64 `json:"turns_per_core_s"`
	MachineTurnsPerCoreS float64 `json:"machine_turns_per_core_s"`
	Caveat               string  `json:"caveat"`
}

// Users is the 200-user closed-model run.
type Users struct {
	Users            int              `json:"users"`
	TurnsPerS        float64          `json:"turns_per_s"`
	P50MS            float64          `json:"p50_ms"`
	P90MS            float64          `json:"p90_ms"`
	P99MS            float64          `json:"p99_ms"`
	P999MS           float64          `json:"p999_ms"`
	MeanMS           float64          `json:"mean_ms"`
	Requests         int64            `json:"requests"`
	Errors           map[string]int64 `json:"errors"`
	ContinuityBroken int64            `json:"continuity_broken"`
	RatioToBaseline  float64          `json:"ratio_to_baseline"`
}

// ColdStart is the time from exec to ready.
type ColdStart struct {
	StartsMS []float64 `json:"starts_ms"`
	MedianMS float64   `json:"median_ms"`
}

// GoBenchmark is one Go benchmark result.
type GoBenchmark struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// Console is the console row: the same open-model load before, with and
// after an open console.
type Console struct {
	RateRPS float64 `json:"rate_rps"`
	Before  Latency `json:"before"`
	With    Latency `json:"with"`
	After   Latency `json:"after"`
	// Polls, PollFailures and PollBytes are what the console did.
	Polls        int   `json:"polls"`
	PollFailures int   `json:"poll_failures"`
	PollBytes    int64 `json:"poll_bytes"`
	// RatioRPS is With over the mean of Before and After; AddedP99MS With's
	// P99 minus their mean; NoiseP99MS how far Before and After differ.
	RatioRPS   float64 `json:"ratio_rps"`
	AddedP99MS float64 `json:"added_p99_ms"`
	NoiseP99MS float64 `json:"noise_p99_ms"`
}

// Streaming is one concurrency of the streaming row.
type Streaming struct {
	Concurrency int           `json:"concurrency"`
	Direct      StreamLatency `json:"direct"`
	Fleet       StreamLatency `json:"fleet"`
	// AddedTTFTP50MS and AddedTTFTP99MS are the fleet's time to first
	// piece minus mockllm's own.
	AddedTTFTP50MS float64 `json:"added_ttft_p50_ms"`
	AddedTTFTP99MS float64 `json:"added_ttft_p99_ms"`
}

// StreamLatency is one path's streams: time to the first content piece
// (from the request sent), the gaps between pieces, and pieces per second
// over the run.
type StreamLatency struct {
	Streams    int     `json:"streams"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Pieces     int     `json:"pieces"`
	PiecesPerS float64 `json:"pieces_per_s"`
	TTFTP50MS  float64 `json:"ttft_p50_ms"`
	TTFTP99MS  float64 `json:"ttft_p99_ms"`
	GapP50MS   float64 `json:"gap_p50_ms"`
	GapP99MS   float64 `json:"gap_p99_ms"`
}

// RedisCapacity is pkg/capacity's benchmarks: the Redis side of chat turns
// (four Stores, 64 turns in flight, no backend) on each topology, and the
// bytes what is stored takes.
type RedisCapacity struct {
	Turns      int        `json:"turns"`
	Topologies []Topology `json:"topologies"`
	// EntryBytes is one history entry (a 100-byte message or a 300-byte
	// reply), ConversationBytes a history of memory.max_entries (100) of
	// them, RequestBytes a finished request's record (MEMORY USAGE).
	EntryBytes        float64 `json:"entry_bytes"`
	ConversationBytes float64 `json:"conversation_bytes"`
	RequestBytes      float64 `json:"request_bytes"`
}

// Topology is one deployment's figures.
type Topology struct {
	Name    string `json:"name"`
	Masters int    `json:"masters"`
	// TurnsPerSecond is what the one client process drove (on this
	// machine the clients and every master share its cores).
	TurnsPerSecond float64 `json:"turns_per_second"`
	// RedisCPUUSPerTurn is the masters' CPU per turn, summed (INFO cpu).
	RedisCPUUSPerTurn float64 `json:"redis_cpu_us_per_turn"`
	// BusiestMasterCores is the busiest master's CPU during the run.
	BusiestMasterCores float64 `json:"busiest_master_cores"`
	// CeilingTurnsPerSecond is where the busiest master would use a whole
	// core (Redis runs commands on one): TurnsPerSecond / BusiestMasterCores.
	CeilingTurnsPerSecond float64 `json:"ceiling_turns_per_second"`
	// BytesPerTurn is used_memory's growth per turn.
	BytesPerTurn float64 `json:"bytes_per_turn"`
}

// Pending is a row that lands later.
type Pending struct {
	Row string `json:"row"`
	Why string `json:"why"`
}

// ReadReport reads a bench.json back.
func ReadReport(file string) (*Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("%s: schema %d, this bench reads %d", file, r.Schema, SchemaVersion)
	}
	return &r, nil
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
