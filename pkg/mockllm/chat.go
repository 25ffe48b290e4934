package mockllm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/botfleet/botfleet/pkg/jsonstr"
	"github.com/botfleet/botfleet/pkg/pause"
)

// maxLastBytes bounds the last user message quoted in a reply.
const maxLastBytes = 200

// maxStreamDeltas is how many content deltas a streamed reply is split into
// at most.
const maxStreamDeltas = 4

// tokenLogprob is the log probability reported for every token.
const tokenLogprob = "-0.05"

// Reply is the deterministic reply the server gives for these messages:
//
//	fmt.Sprintf("mock n=%d h=%s: %s", len(msgs), Digest(msgs), last)
//
// where last is the content of the last message whose role is "user",
// truncated to 200 bytes on a rune boundary, or empty if there is none.
func Reply(msgs []Message) string {
	var scratch [256]byte
	return string(appendReply(nil, scratch[:0], msgs))
}

// Digest is the first 16 hex chars of SHA-256 over every message as
// role + "\x00" + content + "\x00".
func Digest(msgs []Message) string {
	var scratch [256]byte
	d, _ := digest(scratch[:0], msgs)
	return string(d[:])
}

// digest computes the Digest of msgs using scratch as its buffer, which it
// returns (possibly grown) for reuse.
func digest(scratch []byte, msgs []Message) ([16]byte, []byte) {
	b := scratch[:0]
	for i := range msgs {
		b = append(b, msgs[i].Role...)
		b = append(b, 0)
		b = append(b, msgs[i].Content...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(b)
	var out [16]byte
	hex.Encode(out[:], sum[:8])
	return out, b
}

// appendReply appends Reply(msgs) to dst, using scratch for the digest.
func appendReply(dst, scratch []byte, msgs []Message) []byte {
	d, _ := digest(scratch, msgs)
	last := ""
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			last = truncate(msgs[i].Content, maxLastBytes)
			break
		}
	}
	dst = append(dst, "mock n="...)
	dst = strconv.AppendInt(dst, int64(len(msgs)), 10)
	dst = append(dst, " h="...)
	dst = append(dst, d[:]...)
	dst = append(dst, ": "...)
	return append(dst, last...)
}

// truncate cuts s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// nextWord returns the bounds of the first whitespace-separated word of s at
// or after i; start == len(s) when there is none.
func nextWord(s string, i int) (start, end int) {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if !asciiSpace[c] {
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	start = i
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiSpace[c] {
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return start, i
}

var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// countWords counts the whitespace-separated words of s, as len(strings.Fields(s)).
func countWords(s string) int {
	n := 0
	for i := 0; ; n++ {
		start, end := nextWord(s, i)
		if start == len(s) {
			return n
		}
		i = end
	}
}

// bufPool holds buffers for request bodies, digests and responses.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf is the largest buffer returned to the pool.
const maxPooledBuf = 1 << 20

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// readInto reads r's body into *buf.
func readInto(w http.ResponseWriter, r *http.Request, buf *[]byte) error {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			*buf = b
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// chat serves POST /v1/chat/completions.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)

	bodyBuf := getBuf()
	defer putBuf(bodyBuf)
	if err := readInto(w, r, bodyBuf); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "Request body too large.", "invalid_request_error", "")
			return
		}
		writeError(w, http.StatusBadRequest, "Could not read the request body: "+err.Error(), "invalid_request_error", "")
		return
	}
	req, err := decodeChat(*bodyBuf)
	if err != nil {
		writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request: "+err.Error(), "invalid_request_error", "")
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "'messages' must contain at least one message.", "invalid_request_error", "")
		return
	}
	if n := len(req.Images); n > 0 {
		s.images.Add(int64(n))
		s.lastImage.Store(&req.Images[n-1])
	}

	f := s.faults.Load()
	delay := f.Latency
	if f.Jitter > 0 {
		delay += time.Duration(s.rand() % uint64(f.Jitter+1))
	}
	if !pause.For(r.Context(), delay) {
		s.cancelled.Add(1)
		return // the client is gone
	}
	if f.ErrorRate > 0 && float64(s.rand()>>11)/(1<<53) < f.ErrorRate {
		s.errors.Add(1)
		s.injectError(w, f.ErrorStatus)
		return
	}

	msgs := req.Messages
	prompt := 0
	for _, m := range msgs {
		prompt += countWords(m.Content)
	}
	model := s.modelJSON
	if req.Model != "" {
		model = jsonstr.Append((*bodyBuf)[:0], req.Model) // the body is no longer needed
	}

	// The digest input goes to scratch, then the reply overwrites it.
	scratch := getBuf()
	defer putBuf(scratch)
	*scratch = appendReply((*scratch)[:0], *scratch, msgs)
	reply := string(*scratch)
	outBuf := getBuf()
	defer putBuf(outBuf)

	c := completion{
		id:       s.seq.Add(1),
		created:  time.Now().Unix(),
		model:    model,
		reply:    reply,
		prompt:   prompt,
		logprobs: req.Logprobs,
	}
	if req.Stream {
		s.streams.Add(1)
		*outBuf = c.stream(w, r, *outBuf, req.IncludeUsage, s, f)
		return
	}
	*outBuf = c.appendCompletion((*outBuf)[:0])
	writeJSONBytes(w, http.StatusOK, *outBuf)
}

// injectError answers with an injected error of the given status.
func (s *Server) injectError(w http.ResponseWriter, status int) {
	typ, code := "server_error", ""
	switch {
	case status == http.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case status < 500:
		typ = "invalid_request_error"
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header()["Retry-After"] = hdrOne
	}
	writeError(w, status, "mockllm: injected error (HTTP "+strconv.Itoa(status)+")", typ, code)
}

// completion is one answer being written.
type completion struct {
	id       uint64
	created  int64
	model    []byte // JSON string
	reply    string
	prompt   int
	logprobs bool
}

// appendHead appends the fields shared by a completion and its chunks:
// `{"id":"chatcmpl-N","object":OBJECT,"created":T,"model":M,"choices":[`.
func (c *completion) appendHead(b []byte, object string) []byte {
	b = append(b, `{"id":"chatcmpl-`...)
	b = strconv.AppendUint(b, c.id, 10)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, c.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, c.model...)
	return append(b, `,"choices":[`...)
}

func (c *completion) appendUsage(b []byte) []byte {
	completionTokens := countWords(c.reply)
	b = append(b, `"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(c.prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completionTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(c.prompt+completionTokens), 10)
	return append(b, '}')
}

// appendCompletion appends the chat.completion object.
func (c *completion) appendCompletion(b []byte) []byte {
	b = c.appendHead(b, "chat.completion")
	b = append(b, `{"index":0,"message":{"role":"assistant","content":`...)
	b = jsonstr.Append(b, c.reply)
	b = append(b, `,"refusal":null,"annotations":[]},"logprobs":`...)
	b = c.appendLogprobs(b, c.reply)
	b = append(b, `,"finish_reason":"stop"}],`...)
	b = c.appendUsage(b)
	return append(b, '}')
}

// appendLogprobs appends the logprobs of text's words, or null when they
// were not requested.
func (c *completion) appendLogprobs(b []byte, text string) []byte {
	if !c.logprobs {
		return append(b, "null"...)
	}
	b = append(b, `{"content":[`...)
	first := true
	for i := 0; ; {
		start, end := nextWord(text, i)
		if start == len(text) {
			break
		}
		i = end
		if !first {
			b = append(b, ',')
		}
		first = false
		word := text[start:end]
		b = append(b, `{"token":`...)
		b = jsonstr.Append(b, word)
		b = append(b, `,"logprob":`+tokenLogprob+`,"bytes":[`...)
		for j := 0; j < len(word); j++ {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(word[j]), 10)
		}
		b = append(b, `],"top_logprobs":[]}`...)
	}
	return append(b, `],"refusal":null}`...)
}

// stream writes the completion as Server-Sent Events: a role chunk, up to
// f.Chunks (default maxStreamDeltas) content chunks split at word
// boundaries, each after f.ChunkDelay, a finish chunk, an optional usage
// chunk and "data: [DONE]" — or, with f.CutAfter, a connection cut after
// that many content chunks. It flushes after each event, counts a client
// that went away, records when the content chunks went out, and returns
// buf, possibly grown.
func (c *completion) stream(w http.ResponseWriter, r *http.Request, buf []byte, includeUsage bool, s *Server, f *Faults) []byte {
	h := w.Header()
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["X-Accel-Buffering"] = hdrNo
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	ctx := r.Context()
	send := func(b []byte) bool {
		if _, err := w.Write(b); err == nil && flusher != nil {
			flusher.Flush()
		}
		if ctx.Err() != nil {
			s.cancelled.Add(1)
			return false
		}
		return true
	}

	b := c.appendHead(append(buf[:0], "data: "...), "chat.completion.chunk")
	headLen := len(b)
	tail := "]}\n\n"
	if includeUsage {
		tail = `],"usage":null}` + "\n\n"
	}

	b = append(b, `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}`...)
	b = append(b, tail...)
	if !send(b) {
		return b
	}

	reply := c.reply
	chunks := maxStreamDeltas
	if f.Chunks > 0 {
		chunks = f.Chunks
	}
	words := countWords(reply)
	chunks = max(1, min(chunks, words))
	sent := 0
	for pos := 0; pos < len(reply); {
		if f.CutAfter > 0 && sent == f.CutAfter {
			panic(http.ErrAbortHandler) // the fault: the connection drops mid-stream
		}
		if !pause.For(ctx, f.ChunkDelay) {
			s.cancelled.Add(1)
			return b
		}
		// Delta i holds words [i*words/chunks, (i+1)*words/chunks): it runs
		// from pos to the start of the word after them, so the deltas
		// concatenate to the exact reply.
		end := pos
		for range (sent+1)*words/chunks - sent*words/chunks {
			_, end = nextWord(reply, end)
		}
		end, _ = nextWord(reply, end)
		b = append(b[:headLen], `{"index":0,"delta":{"content":`...)
		b = jsonstr.Append(b, reply[pos:end])
		b = append(b, `},"logprobs":`...)
		b = c.appendLogprobs(b, reply[pos:end])
		b = append(b, `,"finish_reason":null}`...)
		b = append(b, tail...)
		now := time.Now().UnixNano()
		if sent == 0 {
			s.first.Store(now)
		}
		s.last.Store(now)
		if !send(b) {
			return b
		}
		sent++
		pos = end
	}

	b = append(b[:headLen], `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}`...)
	b = append(b, tail...)
	if !send(b) {
		return b
	}
	if includeUsage {
		b = append(b[:headLen], "],"...)
		b = c.appendUsage(b)
		b = append(b, "}\n\n"...)
		if !send(b) {
			return b
		}
	}
	send(doneEvent)
	return b
}

var doneEvent = []byte("data: [DONE]\n\n")
