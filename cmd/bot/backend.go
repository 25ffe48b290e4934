package main

import (
	"log/slog"
	"net/url"

	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/prometheus/client_golang/prometheus"
)

// newBackend builds the model router from the configuration: the seed's
// single model (llm.provider, llm.model, llm.openai.*), every model of
// llm.models, and the builtin model, each endpoint behind its breaker.
func newBackend(c config.LLMConfig, logger *slog.Logger, reg prometheus.Registerer, trace bool) (*llm.Router, error) {
	builtin, err := llm.NewBuiltin(llm.BuiltinOptions{
		FAQ: c.Builtin.FAQ, Fallback: c.Builtin.FallbackTemplate, FallbackConfidence: c.Builtin.FallbackConfidence,
	})
	if err != nil {
		return nil, err
	}
	breaker := llm.BreakerOptions{
		Failures: c.Breaker.Failures, Interval: c.Breaker.Interval,
		OpenTimeout: c.Breaker.OpenTimeout, HalfOpenRequests: c.Breaker.HalfOpenRequests,
	}
	var models []llm.ModelOptions
	def := c.DefaultModel
	if c.Provider == "openai" {
		o, err := llm.NewOpenAI(llm.OpenAIOptions{
			BaseURL: c.OpenAI.BaseURL, APIKey: c.OpenAI.APIKey, Model: c.Model,
			Temperature: &c.Temperature, MaxTokens: c.MaxTokens, Timeout: c.Timeout,
			Retries: retries(c.Retries), Logprobs: c.OpenAI.Logprobs, Trace: trace,
		})
		if err != nil {
			return nil, err
		}
		seed := llm.ModelOptions{Name: c.Model, OwnedBy: host(c.OpenAI.BaseURL), Endpoints: []llm.EndpointOptions{{Backend: o}},
			Breaker: breaker, ContextTokens: c.ContextTokens, MaxTokens: c.MaxTokens, Images: c.Images}
		if c.Fallback == "builtin" {
			seed.Fallbacks = []string{"builtin"}
		}
		models = append(models, seed)
		if def == "" {
			def = c.Model
		}
	}
	for _, mc := range c.Models {
		m, err := modelOptions(c, mc, builtin, breaker, trace)
		if err != nil {
			return nil, err
		}
		models = append(models, m)
	}
	if !hasModel(models, "builtin") {
		models = append(models, llm.ModelOptions{Name: "builtin", Endpoints: []llm.EndpointOptions{{Backend: builtin}}, Breaker: breaker})
	}
	if def == "" {
		def = "builtin"
	}
	return llm.NewRouter(llm.RouterOptions{Models: models, Default: def, Logger: logger, Registerer: reg})
}

// modelOptions builds one model of llm.models; what it leaves out comes
// from the llm section.
func modelOptions(c config.LLMConfig, mc config.ModelConfig, builtin *llm.Builtin, breaker llm.BreakerOptions, trace bool) (llm.ModelOptions, error) {
	m := llm.ModelOptions{Name: mc.Name, Breaker: breaker, Fallbacks: mc.Fallbacks, ContextTokens: mc.ContextTokens, MaxTokens: mc.MaxTokens,
		Images: mc.Images}
	if mc.Provider == "builtin" {
		m.Endpoints = []llm.EndpointOptions{{Backend: builtin}}
		return m, nil
	}
	temp := c.Temperature
	if mc.Temperature != nil {
		temp = *mc.Temperature
	}
	timeout, n := c.Timeout, c.Retries
	if mc.Timeout > 0 {
		timeout = mc.Timeout
	}
	if mc.Retries != nil {
		n = *mc.Retries
	}
	upstream := mc.Upstream
	if upstream == "" {
		upstream = mc.Name
	}
	for _, ep := range mc.AllEndpoints() {
		o, err := llm.NewOpenAI(llm.OpenAIOptions{
			BaseURL: ep.BaseURL, APIKey: ep.APIKey, Model: upstream, Temperature: &temp, MaxTokens: mc.MaxTokens,
			Timeout: timeout, Retries: retries(n), Logprobs: mc.Logprobs, Trace: trace,
		})
		if err != nil {
			return m, err
		}
		m.Endpoints = append(m.Endpoints, llm.EndpointOptions{Backend: o, Weight: ep.Weight})
		m.OwnedBy = host(ep.BaseURL)
	}
	return m, nil
}

func hasModel(models []llm.ModelOptions, name string) bool {
	for _, m := range models {
		if m.Name == name {
			return true
		}
	}
	return false
}

// host names a model's owner in the model list by its API's host.
func host(baseURL string) string {
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		return u.Host
	}
	return "botfleet"
}

// retries maps the config's "0 means none" onto OpenAIOptions' "negative
// means none".
func retries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
