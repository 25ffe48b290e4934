package im

import (
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pipeline's:
//
//	botfleet_im_webhooks_total{platform, outcome}  queued, duplicate, ignored, answered (a challenge), rejected
//	botfleet_im_replies_total{platform, outcome}   sent, already_sent, failed
//	botfleet_im_attachments_total{platform, outcome}  taken, refused (too large, a type not accepted), failed
type metrics struct {
	webhooks, replies, attachments *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	v := telemetry.NewVecs(reg)
	return &metrics{
		webhooks:    v.Counter("botfleet_im_webhooks_total", "IM webhook requests by platform and outcome (queued, duplicate, ignored, answered, rejected).", "platform", "outcome"),
		replies:     v.Counter("botfleet_im_replies_total", "Replies to IM platforms by platform and outcome (sent, already_sent, failed).", "platform", "outcome"),
		attachments: v.Counter("botfleet_im_attachments_total", "Images and files received, by platform and outcome (taken, refused, failed).", "platform", "outcome"),
	}
}
