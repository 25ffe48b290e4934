package feishu_test

import (
	"context"
	"testing"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/im/feishu"
	"github.com/botfleet/botfleet/pkg/im/imtest"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// A worker that died after the CardKit card went out, before the draft
// recorded it: the next Begin of the event takes the same card entity
// (Feishu drops the repeated reply by its uuid), so one card is made and
// sent; sequences from two adapters (two instances) of one fleet grow.
func TestCardKitBeginTwiceIsOneCard(t *testing.T) {
	f := imtest.NewFeishu(t, "cli_a", "sec")
	rdb := testenv.StartRedis(t).Client()
	adapter := func() *feishu.CardKit {
		return feishu.New(feishu.Options{AppID: "cli_a", AppSecret: "sec", BaseURL: f.URL, Redis: rdb}).CardKit()
	}
	a, b := adapter(), adapter()
	m := &im.Message{Platform: im.Feishu, EventID: "ev1", ChatType: im.Group, SenderID: "ou_1",
		Reply: map[string]string{"message_id": "om_1"}}
	ctx := context.Background()
	id, err := a.Begin(ctx, m, "first")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(ctx, m, id, "first words"); err != nil {
		t.Fatal(err)
	}
	again, err := b.Begin(ctx, m, "first")
	if err != nil || again != id {
		t.Fatalf("the second Begin gave card %q (%v), want %q", again, err, id)
	}
	if err := b.Finish(ctx, m, id, "first words, all"); err != nil {
		t.Fatal(err)
	}
	cards := f.CardKitCards()
	if len(cards) != 1 || len(f.To("om_1")) != 1 || cards[0].Streaming || cards[0].Closes != 1 ||
		cards[0].Elements[feishu.ElementID] != "<at id=ou_1></at> first words, all" {
		t.Fatalf("cards %+v, replies %+v", cards, f.To("om_1"))
	}
	if len(cards[0].Sequences) != 3 || f.OutOfOrder() != 0 || len(f.Problems()) != 0 {
		t.Fatalf("sequences %v, out of order %d, problems %q", cards[0].Sequences, f.OutOfOrder(), f.Problems())
	}
	if err := a.Edit(ctx, m, id, "late"); err == nil {
		t.Fatal("an edit after the card's streaming ended was taken")
	}
}
