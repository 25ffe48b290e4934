package im

import "github.com/prometheus/client_golang/prometheus"

// metrics are the pipeline's:
//
//	botfleet_im_webhooks_total{platform, outcome}  queued, duplicate, ignored, answered (a challenge), rejected
//	botfleet_im_replies_total{platform, outcome}   sent, already_sent, failed
//	botfleet_im_attachments_total{platform, outcome}  taken, refused (too large, a type not accepted), failed
type metrics struct {
	webhooks, replies, attachments *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_im_webhooks_total", Help: "IM webhook requests by platform and outcome (queued, duplicate, ignored, answered, rejected).",
		}, []string{"platform", "outcome"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_im_replies_total", Help: "Replies to IM platforms by platform and outcome (sent, already_sent, failed).",
		}, []string{"platform", "outcome"}),
		attachments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_im_attachments_total", Help: "Images and files received, by platform and outcome (taken, refused, failed).",
		}, []string{"platform", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.webhooks, m.replies, m.attachments)
	}
	return m
}
