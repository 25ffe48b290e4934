package loadtest

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode/utf8"
)

// session is one conversation. At most one request of a session is in flight
// at a time; it is handed between goroutines through channels, so its fields
// need no lock.
type session struct {
	ordinal int64  // the session's number in the run, 0-based
	id      string // its session id
	sent    int    // requests sent so far (also the last Call.Turn)
	last    int    // the turn the server last reported; 0 before the first reply
	unknown int    // failed requests since the last reply that the server may have recorded
}

// verdict is the outcome of a continuity check.
type verdict int

const (
	unchecked verdict = iota // the reply carries no turn
	continuous
	broken
)

// observe checks a successful reply's turn against the conversation so far:
// the first turn of a fresh conversation is 1 and each next one is the
// previous plus one. After failures the server may have recorded (a timeout,
// a lost connection, a 5xx other than 503), the turn may also have advanced by
// up to that many. A broken turn resynchronizes the expectation on what the
// server said, so one fault is counted once.
func (s *session) observe(r Reply) verdict {
	if r.Turn <= 0 {
		return unchecked
	}
	want := s.last + 1
	ok := r.Turn >= want && r.Turn <= want+s.unknown
	if r.SessionID != "" && r.SessionID != s.id {
		ok = false
	}
	s.last, s.unknown = r.Turn, 0
	if !ok {
		return broken
	}
	return continuous
}

// failed notes a failed request; ambiguous says whether the server may have
// recorded the turn anyway.
func (s *session) failed(ambiguous bool) {
	if ambiguous {
		s.unknown++
	}
}

// sessionIDs makes the run's session ids and messages from its seed.
type sessionIDs struct {
	prefix string
	seed   uint64
	// size, when positive, is every message's length in bytes
	// (Options.MessageBytes); filler is that many bytes of words.
	size   int
	filler string
}

// fillerWords pad a sized message.
const fillerWords = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "

func newSessionIDs(prefix string, seed int64, size int) sessionIDs {
	g := sessionIDs{prefix: prefix, seed: uint64(seed), size: size}
	if size > 0 {
		g.filler = strings.Repeat(fillerWords, size/len(fillerWords)+1)[:size]
	}
	return g
}

// newSession returns the fresh session number ordinal.
func (g *sessionIDs) newSession(ordinal int64) *session {
	return &session{
		ordinal: ordinal,
		id:      fmt.Sprintf("%s%06d-%012x", g.prefix, ordinal, mix(g.seed, uint64(ordinal))&(1<<48-1)),
	}
}

// message returns the text of turn (1-based) of session s: one of
// messages, or with a size exactly size bytes — the text (cut on a rune
// boundary if need be), a mark unique to the session and turn, and filler.
func (g *sessionIDs) message(s *session, turn int) string {
	h := mix(g.seed^0x9e3779b97f4a7c15, uint64(s.ordinal)<<20^uint64(turn))
	text := messages[h%uint64(len(messages))]
	if g.size == 0 {
		return text
	}
	f := fnv.New64a()
	f.Write([]byte(s.id))
	mark := make([]byte, 0, 24)
	mark = append(mark, " ["...)
	mark = strconv.AppendUint(mark, f.Sum64()^uint64(turn)*0x9e3779b97f4a7c15, 16)
	mark = append(mark, "] "...)
	room := g.size - len(mark)
	if len(text) > room {
		n := room
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
	}
	var b strings.Builder
	b.Grow(g.size)
	b.WriteString(text)
	b.Write(mark)
	b.WriteString(g.filler[:g.size-b.Len()])
	return b.String()
}

// mix hashes a and b (splitmix64's finalizer over their combination).
func mix(a, b uint64) uint64 {
	z := a + 0x9e3779b97f4a7c15*(b+1)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// messages are the user texts of the load, a mix of the seeds' FAQ questions
// and free-form turns in Chinese and English.
var messages = []string{
	"你好",
	"你们的营业时间是几点？",
	"我想查询一下订单状态",
	"怎么修改收货地址？",
	"退货流程是怎样的？",
	"有人工客服吗？",
	"帮我总结一下我们刚才聊了什么",
	"谢谢，再见",
	"今天天气怎么样？",
	"请推荐一款适合新手的产品",
	"这个价格可以便宜一点吗？",
	"发票怎么开？",
	"Hello, can you help me?",
	"What did I ask you before?",
	"How do I reset my password?",
	"Please summarize our conversation so far.",
	"Is there a discount for students?",
	"Where is my parcel?",
	"Tell me a short joke.",
	"Can I talk to a human?",
	"What are your opening hours?",
	"I want to cancel my subscription.",
	"Translate 'good morning' into Chinese.",
	"Thanks, that's all for now.",
}
