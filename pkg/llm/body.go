package llm

import (
	"encoding/json"
	"strconv"

	"github.com/botfleet/botfleet/pkg/jsonstr"
)

// encode is p as the request body. Text-only messages, every turn's case,
// are appended by hand, each string escaped by jsonstr.Append:
// json.Marshal's reflection over 101 messages was 16 µs of a turn's
// instance CPU at history 100 (BenchmarkTurn's profile).
// BenchmarkEncodeBody, one run alternating, medians of 4: json.Marshal
// 33 µs and 2 allocations, this 14 µs and 1 (gjson.AppendJSONString's
// byte-by-byte escaping was no faster than json.Marshal). Messages with
// images go through json.Marshal.
func (p wireParams) encode() ([]byte, error) {
	msgs, ok := p.Messages.([]wireMessage)
	if !ok {
		return json.Marshal(p)
	}
	n := 192 + len(p.Model) // the fields around the messages
	for _, m := range msgs {
		n += 24 + len(m.Role) + len(m.Content) // escapes, rare, grow it
	}
	b := make([]byte, 0, n)
	b = append(b, `{"model":`...)
	b = jsonstr.Append(b, p.Model)
	b = append(b, `,"messages":[`...)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"role":`...)
		b = jsonstr.Append(b, m.Role)
		b = append(b, `,"content":`...)
		b = jsonstr.Append(b, m.Content)
		b = append(b, '}')
	}
	b = append(b, ']')
	if p.Temperature != nil {
		b = append(b, `,"temperature":`...)
		b = strconv.AppendFloat(b, *p.Temperature, 'g', -1, 64)
	}
	if p.TopP != nil {
		b = append(b, `,"top_p":`...)
		b = strconv.AppendFloat(b, *p.TopP, 'g', -1, 64)
	}
	if p.MaxTokens != 0 {
		b = append(b, `,"max_tokens":`...)
		b = strconv.AppendInt(b, int64(p.MaxTokens), 10)
	}
	if len(p.Stop) > 0 {
		b = append(b, `,"stop":[`...)
		for i, s := range p.Stop {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, s)
		}
		b = append(b, ']')
	}
	if p.Logprobs {
		b = append(b, `,"logprobs":true`...)
	}
	if p.Stream {
		b = append(b, `,"stream":true`...)
	}
	if p.StreamOptions != nil {
		b = append(b, `,"stream_options":{"include_usage":`...)
		b = strconv.AppendBool(b, p.StreamOptions.IncludeUsage)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}
