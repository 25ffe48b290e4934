package im

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/botfleet/botfleet/pkg/lease"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

var tracer = otel.Tracer("github.com/botfleet/botfleet/pkg/im")

// Chatter runs chat turns and names their conversations; *chat.Service is one.
type Chatter interface {
	Turn(ctx context.Context, r chat.Request) (chat.Result, error)
	Resolve(r chat.Request) (chat.Conversation, error)
}

// Options tune a Pipeline. Zero values take the defaults named.
type Options struct {
	// Prefix starts every key. Default "bf".
	Prefix string
	// GroupScope is the memory scope of group chats: chat.ScopeMember (one
	// memory per member, the default) or chat.ScopeGroup (one per group).
	// Private chats always get c2c:<platform>:<user>.
	GroupScope string
	// RequireMention answers group messages only when they mention the bot.
	RequireMention bool
	// UrgentKeywords make a message urgent when its text contains one
	// (case-insensitive).
	UrgentKeywords []string
	// BatchPrefixes mark a scheduled send: a message whose text starts with
	// one goes to the batch channel, the prefix stripped.
	BatchPrefixes []string
	// BatchSenders are "<platform>:<sender id>" of scheduler accounts whose
	// every message is a scheduled send.
	BatchSenders []string
	// DedupTTL is how long an event id is remembered fleet-wide; longer than
	// every platform's retry window. Default 25h.
	DedupTTL time.Duration
	// SendLease is how long a worker holds the right to send a reply
	// before another may try. Default 30s.
	SendLease time.Duration
	// MaxMessageChars truncates longer messages. Default 4000.
	MaxMessageChars int
	// Registerer, when set, gets the pipeline's metrics (see metrics.go).
	Registerer prometheus.Registerer
	// Media bounds the images and files downloaded for a turn.
	Media MediaOptions
	// StreamReplies streams replies into one message that grows as the
	// model answers, on platforms whose adapter is an Editor. Default off.
	StreamReplies bool
	// Admit, when set, decides on a prepared message before it is queued
	// (rate limits, the content filter): a non-empty outcome drops it — the
	// platform gets its usual answer, the webhook is counted under that
	// outcome — and an error fails the webhook.
	Admit func(ctx context.Context, m *Message) (outcome string, err error)
}

func (o *Options) setDefaults() {
	defaults.Fill(o, Options{Prefix: keyspace.DefaultPrefix, GroupScope: chat.ScopeMember, DedupTTL: 25 * time.Hour,
		SendLease: 30 * time.Second, MaxMessageChars: 4000})
	o.Media.setDefaults()
}

// Pipeline is the path from a platform's webhook to its reply.
type Pipeline struct {
	rdb      redis.UniversalClient
	leases   *lease.Leases
	q        *queue.Queue
	chat     Chatter
	adapters map[string]Adapter
	opts     Options
	log      *slog.Logger
	m        *metrics
}

// NewPipeline returns a pipeline over the enabled adapters; a nil logger
// discards.
func NewPipeline(rdb redis.UniversalClient, q *queue.Queue, c Chatter, adapters []Adapter, opts Options, logger *slog.Logger) *Pipeline {
	opts.setDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{rdb: rdb, leases: lease.New(rdb, lease.Options{}), q: q, chat: c, adapters: map[string]Adapter{}, opts: opts, log: logger, m: newMetrics(opts.Registerer)}
	for _, a := range adapters {
		p.adapters[a.Platform()] = a
	}
	return p
}

// Enabled returns the platforms that are on, in Platforms order.
func (p *Pipeline) Enabled() []string {
	var out []string
	for _, name := range Platforms {
		if _, ok := p.adapters[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

func (p *Pipeline) countWebhook(platform, outcome string) {
	p.m.webhooks.WithLabelValues(platform, outcome).Inc()
}

func (p *Pipeline) countReply(platform, outcome string) {
	p.m.replies.WithLabelValues(platform, outcome).Inc()
}

// Webhook handles one webhook request: verify and parse it, and queue its
// message unless the fleet has seen the event before. It does no chat
// work, so it answers within milliseconds. Its errors are *Error, or
// queue.ErrUnavailable when Redis is down (the platform retries).
func (p *Pipeline) Webhook(ctx context.Context, platform string, header http.Header, body []byte) (Response, error) {
	a, ok := p.adapters[platform]
	if !ok {
		if slices.Contains(Platforms, platform) {
			return Response{}, &Error{Status: http.StatusNotFound, Code: "platform_off",
				Message: fmt.Sprintf("the %s webhook is off: configure its secret (im.%s.*) to turn it on", platform, platform)}
		}
		return Response{}, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such platform: " + platform}
	}
	in, err := a.Parse(ctx, header, body)
	if err != nil {
		p.countWebhook(platform, OutcomeRejected)
		return Response{}, err
	}
	outcome, err := p.admit(ctx, platform, in)
	if err != nil {
		return Response{}, err
	}
	p.countWebhook(platform, outcome)
	return in.Response, nil
}

// prepare chooses the message's conversation and priority; it returns why
// the message is not answered, or "".
func (p *Pipeline) prepare(m *Message) string {
	if m.EventID == "" || m.SenderID == "" {
		return "no event or sender id"
	}
	if m.IsGroup() && p.opts.RequireMention && !m.Mentioned {
		return "a group message that does not mention the bot"
	}
	m.Priority = queue.Normal
	text := strings.TrimSpace(m.Text)
	for _, pre := range p.opts.BatchPrefixes {
		if pre != "" && strings.HasPrefix(text, pre) {
			text, m.Priority = strings.TrimSpace(strings.TrimPrefix(text, pre)), queue.Batch
			break
		}
	}
	if slices.Contains(p.opts.BatchSenders, m.Platform+":"+m.SenderID) {
		m.Priority = queue.Batch
	}
	if m.Priority == queue.Normal {
		lower := strings.ToLower(text)
		for _, kw := range p.opts.UrgentKeywords {
			if kw != "" && strings.Contains(lower, strings.ToLower(kw)) {
				m.Priority = queue.Urgent
				break
			}
		}
	}
	if text == "" && len(m.MediaURLs) == 0 {
		return "no text"
	}
	if utf8.RuneCountInString(text) > p.opts.MaxMessageChars {
		text = string([]rune(text)[:p.opts.MaxMessageChars])
	}
	m.Text = text
	m.Scope = chat.ScopeMember
	if m.IsGroup() {
		m.Scope = p.opts.GroupScope
	}
	conv, err := p.chat.Resolve(m.chatRequest())
	if err != nil {
		return err.Error()
	}
	m.Conversation = conv.Key
	return ""
}

// chatRequest is the turn that answers m: its platform is its tenant, the
// event id its request id.
func (m *Message) chatRequest() chat.Request {
	r := chat.Request{Platform: m.Platform, Scope: m.Scope, UserID: m.SenderID, ID: m.EventID, Message: m.turnText(), Images: m.images(), Endpoint: "im"}
	if m.IsGroup() {
		r.GroupID = m.ChatID
	}
	return r
}

// Handle runs one queued message (a queue.Handler): the chat turn, with the
// event id as its request id — so a job run again after its instance died
// replays the stored reply without a second backend call — then the send,
// at most once per event across the fleet:
//
//  1. GET bf:im:sent:<platform>:<event>; "sent" means done.
//  2. Take the send lease bf:im:sending:<platform>:<event> (pkg/lease) for
//     SendLease; when another worker holds it, wait for its "sent" or the
//     end of its lease.
//  3. Send. On an error, release the lease (so a retry may send) and fail.
//  4. SET bf:im:sent:… to "sent" for DedupTTL, then release the lease.
//
// The crash window is between the platform accepting the reply and step 4:
// an instance that dies there leaves its lease, and once the lease ends a
// reclaimed job sends again — a duplicate, at least once rather than never.
// Feishu closes the window: its reply carries a uuid derived from the
// event, which Feishu dedups for an hour. A send that fails with a timeout
// may likewise have been delivered.
func (p *Pipeline) Handle(ctx context.Context, job *queue.Job) (err error) {
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(job.Fields))
	ctx, span := tracer.Start(ctx, "im.job", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("im.platform", job.Fields["platform"]), attribute.String("queue.priority", string(job.Priority)),
			attribute.Int64("queue.deliveries", job.Deliveries)))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	var m Message
	if err := json.Unmarshal([]byte(job.Fields["msg"]), &m); err != nil {
		return queue.Permanent(fmt.Errorf("im: job %s holds no message: %w", job.ID, err))
	}
	a, ok := p.adapters[m.Platform]
	if !ok {
		return fmt.Errorf("im: platform %s is off on this instance", m.Platform)
	}
	sentKey := p.opts.Prefix + ":im:sent:" + m.Key()
	state, err := p.rdb.Get(ctx, sentKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if state == "sent" {
		p.countReply(m.Platform, "already_sent")
		return nil
	}
	p.fetchMedia(ctx, &m, a)
	if ed, ok := a.(Editor); ok && p.opts.StreamReplies {
		return p.handleStreamed(ctx, job, &m, ed, sentKey)
	}
	res, err := p.chat.Turn(ctx, m.chatRequest())
	if err != nil {
		if !fault.Temporary(err) {
			return queue.Permanent(err)
		}
		return err
	}
	mark := lease.NewOwner()
	done, err := p.claimSend(ctx, sentKey, mark)
	if err != nil {
		return err
	}
	if done {
		p.countReply(m.Platform, "already_sent")
		return nil
	}
	if err := a.Send(ctx, &m, res.Reply); err != nil {
		p.countReply(m.Platform, "failed")
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = p.leases.Release(rctx, sendingKey(sentKey), mark)
		return fmt.Errorf("im: send to %s: %w", m.Platform, err)
	}
	p.recordSent(ctx, &m, sentKey, mark)
	p.log.Info("im: replied", "platform", m.Platform, "event", m.EventID, "turn", res.Turn, "replayed", res.Replayed, "deliveries", job.Deliveries)
	return nil
}
