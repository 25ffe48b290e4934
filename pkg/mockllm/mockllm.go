// Package mockllm is an OpenAI-compatible mock LLM backend for demos, tests
// and benchmarks.
//
// A [Server] answers POST /v1/chat/completions (plain and streamed as
// Server-Sent Events) and GET /v1/models in the real OpenAI wire format, so
// the official clients can talk to it. Its reply is deterministic (see
// [Reply]): it names the number of messages, a [Digest] of the whole history
// and the last user message, which lets tests prove that a backend saw the
// full conversation.
//
// Faults (latency, jitter and an error rate) can be injected at start
// ([Options]) or at run time (PUT /faults), and the server counts what it
// served (GET /stats, POST /reset). Control endpoints:
//
//	GET  /health          {"status":"ok"}
//	GET  /stats           Stats as JSON
//	GET  /stats/stream    StreamTimes as JSON
//	POST /reset           zero the counters
//	GET  /faults          the current Faults as JSON
//	PUT  /faults          change some of latency_ms, jitter_ms, error_rate, error_status,
//	                      chunks, chunk_delay_ms, cut_after
//
// The hot path takes no lock: counters are atomics, the faults live behind
// an atomic pointer and the random numbers come from a lock-free splitmix64
// sequence.
package mockllm

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/jsonstr"
)

// DefaultModel is the model name a Server reports when Options.Model is empty.
const DefaultModel = "mock-1"

// maxBodyBytes bounds a request body.
const maxBodyBytes = 8 << 20

// Message is one chat message as received.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Faults are the injected faults; zero means none.
//
// In JSON the durations are numbers of milliseconds: {"latency_ms": 20,
// "jitter_ms": 5, "error_rate": 0.1, "error_status": 503}.
type Faults struct {
	// Latency delays every chat completion (JSON "latency_ms").
	Latency time.Duration
	// Jitter adds a uniform extra delay in 0..Jitter (JSON "jitter_ms").
	Jitter time.Duration
	// ErrorRate is the probability, in [0,1], of answering a chat completion
	// with ErrorStatus (JSON "error_rate").
	ErrorRate float64
	// ErrorStatus is the HTTP status of an injected error, 400..599
	// (JSON "error_status"); it defaults to 500 when ErrorRate > 0.
	ErrorStatus int
	// Chunks is how many content chunks a streamed reply is split into
	// (JSON "chunks"); 0 means up to 4, at word boundaries.
	Chunks int
	// ChunkDelay waits before each content chunk of a stream (JSON
	// "chunk_delay_ms").
	ChunkDelay time.Duration
	// CutAfter cuts a stream after this many content chunks: the
	// connection is closed with no finish and no [DONE] (JSON "cut_after");
	// 0 never does.
	CutAfter int
}

// faultsJSON is the wire form of Faults.
type faultsJSON struct {
	LatencyMS    float64 `json:"latency_ms"`
	JitterMS     float64 `json:"jitter_ms"`
	ErrorRate    float64 `json:"error_rate"`
	ErrorStatus  int     `json:"error_status"`
	Chunks       int     `json:"chunks"`
	ChunkDelayMS float64 `json:"chunk_delay_ms"`
	CutAfter     int     `json:"cut_after"`
}

// maxMS is the largest number of milliseconds a time.Duration holds.
const maxMS = float64(math.MaxInt64 / int64(time.Millisecond))

// MarshalJSON encodes f with durations as numbers of milliseconds.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(f.wire())
}

func (f Faults) wire() faultsJSON {
	return faultsJSON{
		LatencyMS:    float64(f.Latency) / float64(time.Millisecond),
		JitterMS:     float64(f.Jitter) / float64(time.Millisecond),
		ErrorRate:    f.ErrorRate,
		ErrorStatus:  f.ErrorStatus,
		Chunks:       f.Chunks,
		ChunkDelayMS: float64(f.ChunkDelay) / float64(time.Millisecond),
		CutAfter:     f.CutAfter,
	}
}

// UnmarshalJSON decodes the fields present in data into f and leaves the
// others unchanged, so decoding a partial object into the current faults
// merges. Unknown fields are an error. It does not validate the result; see
// [Server.SetFaults].
func (f *Faults) UnmarshalJSON(data []byte) error {
	aux := f.wire()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	if math.Abs(aux.LatencyMS) > maxMS || math.Abs(aux.JitterMS) > maxMS || math.Abs(aux.ChunkDelayMS) > maxMS {
		return errors.New("mockllm: latency_ms, jitter_ms or chunk_delay_ms out of range")
	}
	*f = Faults{
		Latency:     time.Duration(aux.LatencyMS * float64(time.Millisecond)),
		Jitter:      time.Duration(aux.JitterMS * float64(time.Millisecond)),
		ErrorRate:   aux.ErrorRate,
		ErrorStatus: aux.ErrorStatus,
		Chunks:      aux.Chunks,
		ChunkDelay:  time.Duration(aux.ChunkDelayMS * float64(time.Millisecond)),
		CutAfter:    aux.CutAfter,
	}
	return nil
}

// normalize validates f and fills in the default error status.
func (f Faults) normalize() (Faults, error) {
	switch {
	case f.Latency < 0:
		return f, fmt.Errorf("mockllm: latency must not be negative, got %v", f.Latency)
	case f.Jitter < 0:
		return f, fmt.Errorf("mockllm: jitter must not be negative, got %v", f.Jitter)
	case !(f.ErrorRate >= 0 && f.ErrorRate <= 1): // also rejects NaN
		return f, fmt.Errorf("mockllm: error_rate must be in [0,1], got %v", f.ErrorRate)
	case f.ErrorStatus != 0 && (f.ErrorStatus < 400 || f.ErrorStatus > 599):
		return f, fmt.Errorf("mockllm: error_status must be in 400..599, got %d", f.ErrorStatus)
	case f.Chunks < 0 || f.CutAfter < 0 || f.ChunkDelay < 0:
		return f, fmt.Errorf("mockllm: chunks, cut_after and chunk_delay must not be negative")
	}
	if f.ErrorRate > 0 && f.ErrorStatus == 0 {
		f.ErrorStatus = http.StatusInternalServerError
	}
	return f, nil
}

// Options configure a Server; zero values get the documented defaults.
type Options struct {
	// Model is the model name reported when a request names none and by
	// GET /v1/models; default "mock-1".
	Model string
	// APIKey, if set, is required on /v1/ endpoints as
	// "Authorization: Bearer APIKey"; other requests get 401. The control
	// endpoints (/health, /stats, /reset, /faults) never need it.
	APIKey string
	// Faults are the initial injected faults.
	Faults Faults
	// Seed seeds the error and jitter random numbers; 0 means time-based.
	Seed int64
}

// Stats are counts of what the server served.
type Stats struct {
	// Calls counts every chat completion request received (after the API
	// key check), including invalid ones and those answered with an
	// injected error.
	Calls int64 `json:"calls"`
	// Errors counts injected errors.
	Errors int64 `json:"errors"`
	// Streams counts streamed responses.
	Streams int64 `json:"streams"`
	// Cancelled counts calls whose client went away before the answer was
	// complete.
	Cancelled int64 `json:"cancelled"`
	// Images counts the image_url content parts received; LastImage is
	// the newest one's URL (a data: URL carries the image itself).
	Images    int64  `json:"images"`
	LastImage string `json:"last_image,omitempty"`
}

// StreamTimes are when the newest stream sent its first and its last
// content chunk, Unix nanoseconds: for timing a stream through a proxy
// against the backend's own clock (GET /stats/stream).
type StreamTimes struct {
	FirstChunk int64 `json:"first_chunk_unix_nano"`
	LastChunk  int64 `json:"last_chunk_unix_nano"`
}

// StreamTimes returns the newest stream's times.
func (s *Server) StreamTimes() StreamTimes {
	return StreamTimes{FirstChunk: s.first.Load(), LastChunk: s.last.Load()}
}

// Server is the mock backend; it is an http.Handler and safe for concurrent
// use.
type Server struct {
	model     string
	modelJSON []byte // model as a JSON string
	authz     []byte // expected Authorization header, nil when open
	created   int64  // Unix time reported for the model

	faults atomic.Pointer[Faults]
	rng    atomic.Uint64 // splitmix64 state
	seq    atomic.Uint64 // completion ids; never reset

	calls     atomic.Int64
	errors    atomic.Int64
	streams   atomic.Int64
	cancelled atomic.Int64
	images    atomic.Int64
	lastImage atomic.Pointer[string]
	first     atomic.Int64
	last      atomic.Int64
}

// New returns a Server configured by opts. It panics if opts.Faults is
// invalid (see [Server.SetFaults]).
func New(opts Options) *Server {
	s := &Server{model: opts.Model, created: time.Now().Unix()}
	if s.model == "" {
		s.model = DefaultModel
	}
	s.modelJSON = jsonstr.Append(nil, s.model)
	if opts.APIKey != "" {
		s.authz = []byte("Bearer " + opts.APIKey)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	s.rng.Store(uint64(seed))
	if err := s.SetFaults(opts.Faults); err != nil {
		panic(err)
	}
	return s
}

// SetFaults replaces the injected faults. It returns an error, and changes
// nothing, unless ErrorRate is in [0,1], ErrorStatus is 0 or in 400..599 and
// the durations are not negative. An ErrorStatus of 0 becomes 500 when
// ErrorRate > 0.
func (s *Server) SetFaults(f Faults) error {
	f, err := f.normalize()
	if err != nil {
		return err
	}
	s.faults.Store(&f)
	return nil
}

// Faults returns the injected faults.
func (s *Server) Faults() Faults { return *s.faults.Load() }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := Stats{Calls: s.calls.Load(), Errors: s.errors.Load(), Streams: s.streams.Load(), Cancelled: s.cancelled.Load(), Images: s.images.Load()}
	if p := s.lastImage.Load(); p != nil {
		st.LastImage = *p
	}
	return st
}

// Reset zeroes the counters.
func (s *Server) Reset() {
	s.calls.Store(0)
	s.errors.Store(0)
	s.streams.Store(0)
	s.cancelled.Store(0)
	s.images.Store(0)
	s.lastImage.Store(nil)
	s.first.Store(0)
	s.last.Store(0)
}

// rand returns the next number of a splitmix64 sequence; it is lock-free.
func (s *Server) rand() uint64 {
	z := s.rng.Add(0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Shared read-only header values; net/http does not modify them.
var (
	hdrJSON        = []string{"application/json"}
	hdrEventStream = []string{"text/event-stream; charset=utf-8"}
	hdrNoCache     = []string{"no-cache"}
	hdrOne         = []string{"1"}
	hdrNo          = []string{"no"}
)

// ServeHTTP routes a request; see the package documentation for the
// endpoints. Unknown paths get a 404 and wrong methods a 405, both with an
// OpenAI-style JSON error body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1/") && s.authz != nil && !s.authorized(r) {
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
		return
	}
	switch path {
	case "/v1/chat/completions":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		s.chat(w, r)
	case "/v1/models":
		if !isGet(r) {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		b := append([]byte(`{"object":"list","data":[`), s.appendModel(nil)...)
		writeJSONBytes(w, http.StatusOK, append(b, "]}"...))
	case "/health":
		if !isGet(r) {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ok"}`))
	case "/stats":
		if !isGet(r) {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	case "/stats/stream":
		if !isGet(r) {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		writeJSON(w, http.StatusOK, s.StreamTimes())
	case "/reset":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		s.Reset()
		writeJSON(w, http.StatusOK, s.Stats())
	case "/faults":
		switch {
		case isGet(r):
			writeJSON(w, http.StatusOK, s.Faults())
		case r.Method == http.MethodPut || r.Method == http.MethodPost:
			s.putFaults(w, r)
		default:
			methodNotAllowed(w, "GET, HEAD, PUT, POST")
		}
	default:
		if id, ok := strings.CutPrefix(path, "/v1/models/"); ok {
			if !isGet(r) {
				methodNotAllowed(w, "GET, HEAD")
				return
			}
			if id != s.model {
				writeError(w, http.StatusNotFound, fmt.Sprintf("The model '%s' does not exist", id), "invalid_request_error", "model_not_found")
				return
			}
			writeJSONBytes(w, http.StatusOK, s.appendModel(nil))
			return
		}
		writeError(w, http.StatusNotFound, "Unknown request URL: "+r.Method+" "+path, "invalid_request_error", "unknown_url")
	}
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	return len(h) == len(s.authz) && subtle.ConstantTimeCompare([]byte(h), s.authz) == 1
}

// appendModel appends the model object.
func (s *Server) appendModel(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = append(b, s.modelJSON...)
	b = append(b, `,"object":"model","created":`...)
	b = strconv.AppendInt(b, s.created, 10)
	return append(b, `,"owned_by":"botfleet-mock"}`...)
}

// putFaults merges the fields in the body into the current faults. It
// retries on a concurrent change, so two partial updates never lose one
// another's fields.
func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error", "")
		return
	}
	for {
		old := s.faults.Load()
		f := *old
		if err := json.Unmarshal(body, &f); err != nil {
			writeError(w, http.StatusBadRequest, "invalid faults: "+err.Error(), "invalid_request_error", "")
			return
		}
		f, err := f.normalize()
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error", "")
			return
		}
		if s.faults.CompareAndSwap(old, &f) {
			writeJSON(w, http.StatusOK, f)
			return
		}
	}
}

func isGet(r *http.Request) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	return buf.Bytes(), nil
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "Method not allowed; allowed: "+allow, "invalid_request_error", "method_not_allowed")
}

// writeError writes an OpenAI-style error body; an empty code is null.
func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	b := make([]byte, 0, 128+len(msg))
	b = appendError(b, msg, typ, code)
	writeJSONBytes(w, status, b)
}

// appendError appends {"error":{"message":..,"type":..,"param":null,"code":..}}.
func appendError(b []byte, msg, typ, code string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = jsonstr.Append(b, msg)
	b = append(b, `,"type":`...)
	b = jsonstr.Append(b, typ)
	b = append(b, `,"param":null,"code":`...)
	if code == "" {
		b = append(b, "null"...)
	} else {
		b = jsonstr.Append(b, code)
	}
	return append(b, "}}"...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), "server_error", "")
		return
	}
	writeJSONBytes(w, status, b)
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
