package im

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// The longest reply text each platform takes in one message, in runes.
// Longer replies are split on paragraph boundaries (Split).
const (
	// MaxTelegram is sendMessage's 4096 characters.
	MaxTelegram = 4096
	// MaxDingTalk keeps a text or markdown message under DingTalk's
	// 20000-byte robot message limit for any script (4 bytes a rune).
	MaxDingTalk = 5000
	// MaxFeishu keeps a text message or a card under Feishu's 30 KB card
	// and 150 KB text request limits.
	MaxFeishu = 10000
	// MaxOneBot is what QQ takes in one message (about 4500 characters).
	MaxOneBot = 4500
)

var markdownRE = regexp.MustCompile("(?m)^#{1,6} |^\\s*[-*+] |^\\s*\\d+\\. |\\*\\*[^*]+\\*\\*|`[^`]+`|\\[[^\\]]+\\]\\([^)]+\\)|^> |^\\|.*\\|$")

// HasMarkdown reports whether text uses Markdown formatting (headings,
// lists, bold, code, links, quotes, tables), so that a platform that
// renders Markdown should get it as such rather than as plain text.
func HasMarkdown(text string) bool { return markdownRE.MatchString(text) }

// Split cuts text into parts of at most limit runes: at paragraph
// boundaries (a blank line) where it can, else at line ends, else at
// spaces, else anywhere. A code fence cut in two is closed and reopened,
// so that every part renders. Text within the limit is one part.
func Split(text string, limit int) []string {
	text = strings.TrimSpace(text)
	if utf8.RuneCountInString(text) <= limit || limit <= 0 {
		return []string{text}
	}
	var parts []string
	for text != "" {
		if utf8.RuneCountInString(text) <= limit {
			parts = append(parts, text)
			break
		}
		cut := byteIndex(text, limit)
		head := text[:cut]
		at := -1
		for _, sep := range []string{"\n\n", "\n", " "} {
			if i := strings.LastIndex(head, sep); i > 0 {
				at = i
				break
			}
		}
		if at <= 0 {
			at = cut
		}
		part := strings.TrimSpace(text[:at])
		text = strings.TrimSpace(text[at:])
		if strings.Count(part, "```")%2 == 1 { // a code block goes on in the next part
			part += "\n```"
			text = "```\n" + text
		}
		parts = append(parts, part)
	}
	return parts
}

// byteIndex is the byte offset of rune n of s, leaving room for a closing
// code fence.
func byteIndex(s string, n int) int {
	n = max(n-4, 1)
	i := 0
	for range n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}
