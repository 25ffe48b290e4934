package feishu

import (
	"encoding/json"
	"testing"
)

// Feishu's documented reply content: msg_type text with content
// {"text"} (a mention is <at user_id="ou_…"></at>), and msg_type
// interactive with a card {"config":{"wide_screen_mode"},"elements":[{"tag":
// "markdown","content"}]} (a mention is <at id=ou_…></at>).
func TestReplyContent(t *testing.T) {
	typ, content := Content("纯文本", "")
	var text struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(content), &text); typ != "text" || err != nil || text.Text != "纯文本" {
		t.Fatalf("%s %s", typ, content)
	}
	if _, content = Content("hi", "ou_7"); json.Unmarshal([]byte(content), &text) != nil || text.Text != `<at user_id="ou_7"></at> hi` {
		t.Fatalf("%s", content)
	}
	typ, content = Content("**粗体** and `code`", "ou_7")
	var card struct {
		Config struct {
			WideScreenMode bool `json:"wide_screen_mode"`
		} `json:"config"`
		Elements []struct {
			Tag     string `json:"tag"`
			Content string `json:"content"`
		} `json:"elements"`
	}
	if err := json.Unmarshal([]byte(content), &card); typ != "interactive" || err != nil || !card.Config.WideScreenMode ||
		len(card.Elements) != 1 || card.Elements[0].Tag != "markdown" || card.Elements[0].Content != "<at id=ou_7></at> **粗体** and `code`" {
		t.Fatalf("%s %s", typ, content)
	}
}
