package im

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHasMarkdown(t *testing.T) {
	for text, want := range map[string]bool{
		"plain words, 中文，没有格式。": false, "2 * 3 = 6": false, "a - b": false,
		"# 标题\n正文": true, "- one\n- two": true, "1. first": true, "this is **bold**": true,
		"run `make test`": true, "see [the docs](https://x)": true, "> quoted": true, "| a | b |": true,
	} {
		if got := HasMarkdown(text); got != want {
			t.Errorf("HasMarkdown(%q) = %v", text, got)
		}
	}
}

func TestSplitOnParagraphs(t *testing.T) {
	para := strings.Repeat("字", 30)
	text := strings.Join([]string{para, para, para, para}, "\n\n")
	parts := Split(text, 40)
	if len(parts) != 4 {
		t.Fatalf("%d parts: %q", len(parts), parts)
	}
	for _, p := range parts {
		if p != para {
			t.Fatalf("a part is not a paragraph: %q", p)
		}
	}
	if parts = Split(text, 70); len(parts) != 2 || parts[0] != para+"\n\n"+para { // as many paragraphs as fit
		t.Fatalf("%q", parts)
	}
	if got := Split("short", 70); len(got) != 1 || got[0] != "short" {
		t.Fatalf("%q", got)
	}
	long := strings.Repeat("x", 250) // no boundary at all
	parts = Split(long, 100)
	if strings.Join(parts, "") != long {
		t.Fatal("a hard split lost text")
	}
	code := "```\n" + strings.Repeat("line of code\n", 30) + "```"
	for _, p := range Split(code, 100) {
		if utf8.RuneCountInString(p) > 100 || strings.Count(p, "```")%2 != 0 {
			t.Fatalf("a part over the limit or with an open fence: %q", p)
		}
	}
}
