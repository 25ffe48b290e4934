package dingtalk

import (
	"encoding/json"
	"testing"
)

// The session webhook's documented bodies: text {"msgtype":"text",
// "text":{"content"}}, markdown {"msgtype":"markdown","markdown":{"title",
// "text"}}, and "at":{"atUserIds":[…],"isAtAll"}; in markdown the @staffId
// must also stand in the text.
func TestReplyBodies(t *testing.T) {
	var text struct {
		MsgType string `json:"msgtype"`
		Text    struct {
			Content string `json:"content"`
		} `json:"text"`
		At *struct{} `json:"at"`
	}
	b, _ := json.Marshal(Message("plain 回复", ""))
	if err := json.Unmarshal(b, &text); err != nil || text.MsgType != "text" || text.Text.Content != "plain 回复" || text.At != nil {
		t.Fatalf("%s", b)
	}
	var md struct {
		MsgType  string `json:"msgtype"`
		Markdown struct {
			Title string `json:"title"`
			Text  string `json:"text"`
		} `json:"markdown"`
		At struct {
			AtUserIDs []string `json:"atUserIds"`
			IsAtAll   *bool    `json:"isAtAll"`
		} `json:"at"`
	}
	b, _ = json.Marshal(Message("## 今日计划\n\n- **一**\n- 二", "staff42"))
	if err := json.Unmarshal(b, &md); err != nil || md.MsgType != "markdown" || md.Markdown.Title != "今日计划" ||
		md.Markdown.Text != "@staff42 ## 今日计划\n\n- **一**\n- 二" || len(md.At.AtUserIDs) != 1 || md.At.AtUserIDs[0] != "staff42" ||
		md.At.IsAtAll == nil || *md.At.IsAtAll {
		t.Fatalf("%s", b)
	}
}
