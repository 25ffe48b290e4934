package memory

import (
	"fmt"
	"strconv"
	"strings"
)

// Entries are stored as one compact line each, "<r><turn>:<unix time>:<content>"
// with r = u (user) or a (assistant), e.g. "u3:1795458811:what is up". It
// decodes without copying the content and costs a fraction of JSON's
// decode on a turn that loads a hundred of them.

// appendEntry appends e's stored form to dst.
func appendEntry(dst []byte, role byte, turn int, ts int64, content string) []byte {
	dst = append(dst, role)
	dst = strconv.AppendInt(dst, int64(turn), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, ':')
	return append(dst, content...)
}

// decodeEntry parses a stored entry into e.
func decodeEntry(raw string, e *Entry) error {
	if len(raw) < 1 {
		return fmt.Errorf("empty entry")
	}
	switch raw[0] {
	case 'u':
		e.Role = "user"
	case 'a':
		e.Role = "assistant"
	default:
		return fmt.Errorf("entry %.20q: unknown role", raw)
	}
	turn, rest, ok1 := strings.Cut(raw[1:], ":")
	ts, content, ok2 := strings.Cut(rest, ":")
	n, err1 := strconv.Atoi(turn)
	t, err2 := strconv.ParseInt(ts, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return fmt.Errorf("entry %.20q: malformed", raw)
	}
	e.Turn, e.Time, e.Content = n, t, content
	return nil
}
