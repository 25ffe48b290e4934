package dingtalk

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/im/imtest"
	"github.com/botfleet/botfleet/pkg/queue"
)

// An AI card in a group: made in the group's space with the sender @ed,
// streamed, an update too soon refused as DingTalk's QpsLimit (a retry
// may help); another card marked failed (isError) and no longer updated;
// every body as DingTalk documents it.
func TestAICardInAGroup(t *testing.T) {
	f := imtest.NewDingTalk(t, "dingclient", "secret")
	c := New(Options{ClientID: "dingclient", AppSecret: "secret", APIURL: f.URL}).Cards(f.CardTemplate, "")
	m := &im.Message{Platform: im.DingTalk, EventID: "g1", ChatID: "cidgroup", ChatType: im.Group, SenderName: "Li",
		Reply: map[string]string{"sender_staff_id": "staff9", "robot_code": "dingbot"}}
	ctx := context.Background()
	id, err := c.Begin(ctx, m, "正在")
	if err != nil || id != OutTrackID("g1") {
		t.Fatalf("begin: %q, %v", id, err)
	}
	made := f.To(id)[0]
	var body struct {
		OpenSpaceID string `json:"openSpaceId"`
		Deliver     struct {
			RobotCode string            `json:"robotCode"`
			AtUserIDs map[string]string `json:"atUserIds"`
		} `json:"imGroupOpenDeliverModel"`
	}
	if err := json.Unmarshal(made.Body, &body); err != nil || body.OpenSpaceID != "dtv1.card//IM_GROUP.cidgroup" ||
		body.Deliver.RobotCode != "dingbot" || body.Deliver.AtUserIDs["staff9"] != "Li" || made.Text != "正在" {
		t.Fatalf("createAndDeliver %s", made.Body)
	}
	err = c.Edit(ctx, m, id, "正在想") // within CardGap of nothing: the first update goes
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Edit(ctx, m, id, "正在想…"); err == nil || queue.IsPermanent(err) || !strings.Contains(err.Error(), "QpsLimit") {
		t.Fatalf("an update too soon: %v, want a temporary QpsLimit error", err)
	}
	// Begin again (a worker died before its draft was recorded): DingTalk
	// refuses a second card, and the card, updated too soon, says retry.
	if _, err := c.Begin(ctx, m, "again"); err == nil || queue.IsPermanent(err) || f.Recreated() != 1 {
		t.Fatalf("begin again too soon: %v (recreated %d), want a temporary error and no second card", err, f.Recreated())
	}
	if p := f.Problems(); len(p) != 0 {
		t.Fatalf("problems %q", p)
	}
	card := func(id string) imtest.Card {
		for _, c := range f.Cards() {
			if c.OutTrackID == id {
				return c
			}
		}
		t.Fatalf("no card %s", id)
		return imtest.Card{}
	}
	if c := card(id); c.Text != "正在想" || c.Updates != 1 || f.TooFast() != 2 { // the Edit and the Begin again
		t.Fatalf("card %+v, too fast %d", c, f.TooFast())
	}
	m.EventID = "g3" // a card made, its draft lost: Begin again takes it over
	first, err := c.Begin(ctx, m, "one")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Begin(ctx, m, "one, two"); err != nil || again != first || f.Recreated() != 2 {
		t.Fatalf("begin again: %q, %v (recreated %d), want %q", again, err, f.Recreated(), first)
	}
	if c := card(first); c.Text != "one, two" || len(f.Cards()) != 2 {
		t.Fatalf("card %+v of %d", c, len(f.Cards()))
	}
	m.EventID = "g2"
	failed, err := c.Begin(ctx, m, "half")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Fail(ctx, m, failed, "half"); err != nil {
		t.Fatal(err)
	}
	if c := card(failed); c.Errored != 1 || c.Finalized != 0 {
		t.Fatalf("failed card %+v", c)
	}
}
