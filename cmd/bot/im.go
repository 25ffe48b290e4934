package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/im/dingtalk"
	"github.com/botfleet/botfleet/pkg/im/feishu"
	"github.com/botfleet/botfleet/pkg/im/onebot"
	"github.com/botfleet/botfleet/pkg/im/telegram"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// imParts are the IM pipeline, its queue and this instance's workers (nil
// when no platform is on here), and the stream-mode links.
type imParts struct {
	pipeline *im.Pipeline
	queue    *queue.Queue
	consumer *queue.Consumer
	links    *im.Links
	// onebotWS serves OneBot's reverse WebSocket; closers end what the
	// links do not (reverse sockets) at the drain.
	onebotWS http.Handler
	closers  []func()
}

// newIM builds the enabled platforms' adapters, the pipeline and the queue
// consumer; a platform is on when its secret is configured.
func newIM(cfg *config.Config, rdb redis.UniversalClient, svc *chat.Service, logger *slog.Logger, m *telemetry.Metrics,
	admit func(context.Context, *im.Message) (string, error), trace bool) *imParts {
	c := cfg.IM
	client := im.NewHTTPClient(c.SendTimeout)
	if trace {
		// Replies carry the turn's trace context (traceparent) to the
		// platform's API, with a client span per call.
		client.Transport = otelhttp.NewTransport(http.DefaultTransport)
	}
	var adapters []im.Adapter

	var links []func(*imParts)
	if c.Feishu.AppSecret != "" {
		fs := feishu.New(feishu.Options{
			AppID: c.Feishu.AppID, AppSecret: c.Feishu.AppSecret, VerificationToken: c.Feishu.VerificationToken,
			EncryptKey: c.Feishu.EncryptKey, BaseURL: c.Feishu.BaseURL, BotOpenID: c.Feishu.BotOpenID,
			MaxSkew: c.DedupTTL, Redis: rdb, Prefix: cfg.Redis.KeyPrefix, Client: client,
		})
		var fa im.Adapter = fs
		if c.Feishu.StreamCard == "cardkit" {
			fa = fs.CardKit()
		}
		adapters = append(adapters, fa)
		if c.Feishu.Mode == "stream" {
			links = append(links, func(p *imParts) { p.links.Add(fs.Socket(), c.Feishu.Connections) })
		}
	}
	if c.DingTalk.AppSecret != "" {
		dt := dingtalk.New(dingtalk.Options{AppSecret: c.DingTalk.AppSecret, WebhookHosts: c.DingTalk.WebhookHosts, Client: client,
			ClientID: c.DingTalk.ClientID, APIURL: c.DingTalk.APIURL})
		var da im.Adapter = dt
		if c.DingTalk.CardTemplateID != "" { // streamed replies go into AI cards
			da = dt.Cards(c.DingTalk.CardTemplateID, c.DingTalk.CardContentKey)
		}
		adapters = append(adapters, da)
		if c.DingTalk.Mode == "stream" {
			links = append(links, func(p *imParts) {
				p.links.Add(dt.Stream(c.DingTalk.APIURL, c.DingTalk.ClientID), c.DingTalk.Connections)
			})
		}
	}
	obStream := c.OneBot.Mode == "stream"
	if c.OneBot.Secret != "" || (obStream && (c.OneBot.WSURL != "" || c.OneBot.AccessToken != "")) {
		ob := onebot.New(onebot.Options{Secret: c.OneBot.Secret, APIURL: c.OneBot.APIURL, AccessToken: c.OneBot.AccessToken, Client: client,
			Stream: obStream, Redis: rdb, Prefix: cfg.Redis.KeyPrefix, CallTimeout: c.SendTimeout})
		adapters = append(adapters, ob)
		switch {
		case obStream && c.OneBot.WSURL != "":
			links = append(links, func(p *imParts) {
				p.links.Add(ob.Forward(c.OneBot.WSURL, c.OneBot.WSEndpoints == "split"), c.OneBot.Connections)
			})
		case obStream:
			links = append(links, func(p *imParts) {
				p.onebotWS = ob.Reverse(p.links.Incoming(im.OneBot))
				p.closers = append(p.closers, ob.Close)
			})
		}
	}
	if c.Telegram.SecretToken != "" || (c.Telegram.Mode == "stream" && c.Telegram.BotToken != "") {
		tg := telegram.New(telegram.Options{
			BotToken: c.Telegram.BotToken, SecretToken: c.Telegram.SecretToken, APIURL: c.Telegram.APIURL,
			BotUsername: c.Telegram.BotUsername, Client: client,
		})
		adapters = append(adapters, tg)
		if c.Telegram.Mode == "stream" { // one poller per bot: Telegram allows no other policy
			links = append(links, func(p *imParts) { p.links.Add(tg.Poller(rdb, cfg.Redis.KeyPrefix, c.Telegram.PollTimeout), im.One) })
		}
	}
	q := queue.New(rdb, cfg.Redis.KeyPrefix, cfg.Queue.DeadMaxLen)
	p := im.NewPipeline(rdb, q, svc, adapters, im.Options{
		Prefix: cfg.Redis.KeyPrefix, GroupScope: c.GroupScope, RequireMention: c.RequireMention,
		UrgentKeywords: c.UrgentKeywords, BatchPrefixes: c.BatchPrefixes, BatchSenders: c.BatchSenders,
		DedupTTL: c.DedupTTL, SendLease: c.SendLease, MaxMessageChars: cfg.Chat.MaxMessageChars,
		Registerer: m.Registerer, Media: im.MediaOptions{MaxBytes: c.MediaMaxBytes, Types: c.MediaTypes},
		StreamReplies: c.StreamReplies, Admit: admit,
	}, logger)
	m.ScrapeRegisterer.MustRegister(q.Collector())
	parts := &imParts{pipeline: p, queue: q, links: im.NewLinks(rdb, p, im.LinksOptions{
		Prefix: cfg.Redis.KeyPrefix, Instance: cfg.Server.InstanceName, Lease: c.LinkLease, Logger: logger,
		Registerer: m.Registerer,
	})}
	for _, add := range links {
		add(parts)
	}
	if len(adapters) == 0 {
		return parts
	}
	qc := cfg.Queue
	parts.consumer = q.NewConsumer(queue.ConsumerOptions{
		Name: queue.NewConsumerName(cfg.Server.InstanceName), Workers: qc.Workers, JobTimeout: qc.JobTimeout,
		Block: qc.Block, ClaimIdle: qc.ClaimIdle, ReclaimInterval: qc.ReclaimInterval, RetryBackoff: qc.RetryBackoff,
		MaxDeliveries: int64(qc.MaxDeliveries), FairEvery: qc.FairEvery, Logger: logger,
		Observe: queue.NewMetrics(m.Registerer).Observe,
	}, p.Handle)
	return parts
}

// workers is how many queue workers this instance runs.
func (p *imParts) workers() int {
	if p.consumer == nil {
		return 0
	}
	return p.consumer.Options().Workers
}

// stopLinks closes the links and hands `one` links over (the drain's
// first step).
func (p *imParts) stopLinks(ctx context.Context) error {
	err := p.links.Stop(ctx)
	for _, c := range p.closers {
		c()
	}
	return err
}

// healthLinks reports the links' states for /health, or nil when there are none.
func (p *imParts) healthLinks() func() any {
	if p.links.Len() == 0 {
		return nil
	}
	return func() any { return p.links.States() }
}
