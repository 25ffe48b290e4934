package mockllm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// chatRequest is the part of an OpenAI chat completion request the mock
// reads. Fields it only accepts (temperature, max_tokens) are checked for
// their types; unknown fields are ignored, as OpenAI does.
type chatRequest struct {
	Model        string
	Messages     []Message
	Stream       bool
	Logprobs     bool
	IncludeUsage bool // stream_options.include_usage
	// Images are the URLs of the messages' image_url content parts, in
	// order (counted in Stats.Images).
	Images []string
}

// decodeChat reads a chat completion request with gjson rather than
// encoding/json, whose reflection and per-message UnmarshalJSON made the
// mock cost more than the bot it stands behind: serving the bench fleet's
// request at history 100 (BenchmarkChatCompletion100, 9.3 KB) took
// 207–373 µs and 246 allocations with encoding/json, 88–183 µs and 31
// allocations with gjson (one interleaved run on 2 loaded cores). The
// checks are encoding/json's: the body is one valid JSON object, every
// known field of its type, invalid UTF-8 in a string becomes U+FFFD, the
// last of duplicate keys wins, unknown fields are ignored.
func decodeChat(body []byte) (chatRequest, error) {
	var req chatRequest
	if !gjson.ValidBytes(body) {
		return req, errors.New("invalid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return req, errors.New("the body must be a JSON object")
	}
	err := eachField(root, func(key string, v gjson.Result) (err error) {
		switch key {
		case "model":
			req.Model, err = str(v, "model")
		case "messages":
			req.Messages, req.Images, err = messages(v)
		case "stream":
			req.Stream, err = boolean(v, "stream")
		case "logprobs":
			req.Logprobs, err = boolean(v, "logprobs")
		case "temperature":
			if v.Type != gjson.Number && v.Type != gjson.Null {
				err = fmt.Errorf("temperature: want a number, got %s", v.Raw)
			}
		case "max_tokens":
			if v.Type != gjson.Null {
				if _, perr := strconv.ParseInt(v.Raw, 10, 64); v.Type != gjson.Number || perr != nil {
					err = fmt.Errorf("max_tokens: want an integer, got %s", v.Raw)
				}
			}
		case "stream_options":
			req.IncludeUsage, err = false, nil
			if v.Type == gjson.Null {
				break
			}
			if !v.IsObject() {
				err = fmt.Errorf("stream_options: want an object, got %s", v.Raw)
				break
			}
			req.IncludeUsage, err = boolean(v.Get("include_usage"), "stream_options.include_usage")
		}
		return err
	})
	return req, err
}

// eachField calls fn with each field of the object v, in order, until it
// returns an error.
func eachField(v gjson.Result, fn func(key string, f gjson.Result) error) (err error) {
	v.ForEach(func(key, f gjson.Result) bool {
		err = fn(key.Str, f)
		return err == nil
	})
	return err
}

// messages reads the messages array, and the URLs of its image parts; a
// missing or null one is empty.
func messages(v gjson.Result) ([]Message, []string, error) {
	if v.Type == gjson.Null {
		return nil, nil, nil
	}
	if !v.IsArray() {
		return nil, nil, fmt.Errorf("messages: want an array, got %.40s", v.Raw)
	}
	var msgs []Message
	var images []string
	var err error
	v.ForEach(func(_, m gjson.Result) bool {
		i := len(msgs)
		if !m.IsObject() {
			err = fmt.Errorf("messages[%d]: want an object, got %.40s", i, m.Raw)
			return false
		}
		var msg Message
		err = eachField(m, func(key string, f gjson.Result) (err error) {
			switch key {
			case "role":
				msg.Role, err = str(f, "role")
			case "content":
				msg.Content, err = content(f, &images)
			}
			return err
		})
		if err != nil {
			err = fmt.Errorf("messages[%d].%w", i, err)
			return false
		}
		msgs = append(msgs, msg)
		return true
	})
	return msgs, images, err
}

// content is a message's content: a string, null, or an array of content
// parts whose "text" parts are concatenated in order; the URLs of its
// "image_url" parts are added to images.
func content(v gjson.Result, images *[]string) (string, error) {
	switch {
	case v.Type == gjson.String:
		return valid(v.Str), nil
	case v.Type == gjson.Null:
		return "", nil
	case v.IsArray():
		var b strings.Builder
		var err error
		v.ForEach(func(_, p gjson.Result) bool {
			if !p.IsObject() {
				err = fmt.Errorf("content: a part must be an object, got %.40s", p.Raw)
				return false
			}
			var typ, text string
			if typ, err = str(p.Get("type"), "content type"); err != nil {
				return false
			}
			if text, err = str(p.Get("text"), "content text"); err != nil {
				return false
			}
			switch typ {
			case "text":
				b.WriteString(text)
			case "image_url":
				var url string
				if url, err = str(p.Get("image_url.url"), "content image_url.url"); err != nil {
					return false
				}
				if url == "" {
					err = errors.New("content: an image_url part needs image_url.url")
					return false
				}
				*images = append(*images, url)
			}
			return true
		})
		return b.String(), err
	}
	return "", errBadContent
}

var errBadContent = errors.New("content: must be a string, null or an array of content parts")

// str is a string field (absent or null: "").
func str(v gjson.Result, name string) (string, error) {
	switch v.Type {
	case gjson.String:
		return valid(v.Str), nil
	case gjson.Null:
		return "", nil
	}
	return "", fmt.Errorf("%s: want a string, got %.40s", name, v.Raw)
}

// boolean is a boolean field (absent or null: false).
func boolean(v gjson.Result, name string) (bool, error) {
	switch v.Type {
	case gjson.True:
		return true, nil
	case gjson.False, gjson.Null:
		return false, nil
	}
	return false, fmt.Errorf("%s: want a boolean, got %.40s", name, v.Raw)
}

// valid replaces every byte of invalid UTF-8 with U+FFFD, as encoding/json
// does.
func valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.Map(func(r rune) rune { return r }, s)
}
