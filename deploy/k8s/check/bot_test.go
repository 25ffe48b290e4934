package check

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/config"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// notBotEnv are the variables of the bot's container that its config does
// not read: the Go runtime's and the config file's path.
var notBotEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "BOT_CONFIG"}

// botEnv is every environment variable the bot's config reads.
func botEnv() []string {
	var names []string
	for _, k := range config.Keys() {
		names = append(names, config.EnvNames(k)...)
	}
	return append(names, notBotEnv...)
}

// checkBot checks what the API server cannot know: that the bot's config
// and the Deployment around it fit together.
func checkBot(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var d appsv1.Deployment
	decode(t, named(t, objs, "Deployment", "botfleet"), &d)
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the bot pod has %d containers, want 1", len(pod.Containers))
	}
	bot := pod.Containers[0]

	cfg := loadConfig(t, objs, pod, bot)
	port := bot.Ports[0]
	if port.ContainerPort != int32(cfg.Server.Port) || cfg.Server.Host != "0.0.0.0" {
		t.Errorf("the bot listens on %s:%d, its container port is %d", cfg.Server.Host, cfg.Server.Port, port.ContainerPort)
	}
	checkMetricsPort(t, objs, cfg, bot)
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startupProbe", bot.StartupProbe, "/health"}, {"livenessProbe", bot.LivenessProbe, "/health"}, {"readinessProbe", bot.ReadinessProbe, "/ready"}}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != port.Name {
			t.Errorf("%s must GET %s on port %s: %+v", p.name, p.path, port.Name, p.probe)
		}
	}

	// The kubelet's grace covers the preStop sleep and the bot's drain,
	// and not much more: a pod that hangs is killed soon after.
	if bot.Lifecycle == nil || bot.Lifecycle.PreStop == nil || bot.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("the bot has no preStop sleep: new requests would reach it after SIGTERM closed its listener")
	}
	preStop := time.Duration(bot.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	drain := preStop + cfg.Server.ShutdownGrace
	if grace < drain+2*time.Second || grace > drain+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v must be preStop %v + server.shutdown_grace %v + 2..10s", grace, preStop, cfg.Server.ShutdownGrace)
	}

	// Seed 000: CPU 1000m, memory 2Gi.
	for name, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: "1", corev1.ResourceMemory: "2Gi"} {
		for _, rl := range []corev1.ResourceList{bot.Resources.Requests, bot.Resources.Limits} {
			if q := rl[name]; q.String() != want {
				t.Errorf("bot %s: %s, want %s", name, q.String(), want)
			}
		}
	}
	sc := bot.SecurityContext
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("the bot must run as non-root on a read-only root with no capabilities: %+v %+v", pod.SecurityContext, sc)
	}
	zones := slices.ContainsFunc(pod.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
		return c.TopologyKey == "topology.kubernetes.io/zone"
	})
	if !zones {
		t.Error("the bot pods are not spread across zones")
	}

	// A Service named redis would hand the pod REDIS_PORT=tcp://…, which
	// the bot reads as redis.port.
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		for _, svc := range ofKind(objs, "Service") {
			name := strings.ToUpper(strings.ReplaceAll(svc.GetName(), "-", "_"))
			for _, v := range []string{name + "_PORT", name + "_SERVICE_HOST", name + "_SERVICE_PORT"} {
				if slices.Contains(botEnv(), v) {
					t.Errorf("Service %s injects %s, which the bot reads: set enableServiceLinks: false", svc.GetName(), v)
				}
			}
		}
	}

	checkSelectors(t, objs, d)
	checkIngresses(t, objs, cfg)
	checkRedis(t, objs, cfg)
}

// checkMetricsPort: /metrics is on a listener of its own, the container's
// port "metrics", which the Service offers Prometheus (and the
// ServiceMonitor, where there is one, scrapes) and the NetworkPolicy opens
// to the monitoring namespace only.
func checkMetricsPort(t *testing.T, objs []*unstructured.Unstructured, cfg *config.Config, bot corev1.Container) {
	t.Helper()
	_, port, _ := strings.Cut(cfg.Server.MetricsListen, ":")
	i := slices.IndexFunc(bot.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" })
	if i < 0 || port != strconv.Itoa(int(bot.Ports[i].ContainerPort)) {
		t.Fatalf("server.metrics_listen %q is not the container port named metrics (%v)", cfg.Server.MetricsListen, bot.Ports)
	}
	var svc corev1.Service
	decode(t, named(t, objs, "Service", "botfleet"), &svc)
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" && p.TargetPort.String() == "metrics" }) {
		t.Errorf("the Service has no port metrics for Prometheus: %+v", svc.Spec.Ports)
	}
	for _, sm := range ofKind(objs, "ServiceMonitor") {
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		for _, ep := range eps {
			if p := ep.(map[string]any)["port"]; p != "metrics" {
				t.Errorf("ServiceMonitor %s scrapes port %v, not metrics", sm.GetName(), p)
			}
		}
	}
	var np networkingv1.NetworkPolicy
	decode(t, named(t, objs, "NetworkPolicy", "botfleet"), &np)
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port.String() != "metrics" {
				continue
			}
			for _, from := range rule.From {
				if ns := from.NamespaceSelector; ns == nil || ns.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
					t.Errorf("the NetworkPolicy opens the metrics port to %+v, not only the monitoring namespace", from)
				}
			}
		}
	}
}

// checkSelectors: the Service, the PodDisruptionBudget and the
// NetworkPolicy select the bot's pods, and the HPA scales its Deployment.
func checkSelectors(t *testing.T, objs []*unstructured.Unstructured, d appsv1.Deployment) {
	t.Helper()
	pods := d.Spec.Template.Labels
	selects := func(what string, sel map[string]string) {
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", what)
		}
		for k, v := range sel {
			if pods[k] != v {
				t.Errorf("%s selects %s=%s, which the bot's pods (%v) lack", what, k, v, pods)
			}
		}
	}
	var svc corev1.Service
	decode(t, named(t, objs, "Service", "botfleet"), &svc)
	selects("Service botfleet", svc.Spec.Selector)
	var pdb policyv1.PodDisruptionBudget
	decode(t, named(t, objs, "PodDisruptionBudget", "botfleet"), &pdb)
	selects("PodDisruptionBudget botfleet", pdb.Spec.Selector.MatchLabels)
	var np networkingv1.NetworkPolicy
	decode(t, named(t, objs, "NetworkPolicy", "botfleet"), &np)
	selects("NetworkPolicy botfleet", np.Spec.PodSelector.MatchLabels)
	var hpa autoscalingv2.HorizontalPodAutoscaler
	decode(t, named(t, objs, "HorizontalPodAutoscaler", "botfleet"), &hpa)
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("the HPA scales %s %s, not the Deployment %s", ref.Kind, ref.Name, d.Name)
	}
}

// loadConfig runs the bot's own loader on the ConfigMap's config.yaml and
// the container's environment, as the bot would start in the pod.
func loadConfig(t *testing.T, objs []*unstructured.Unstructured, pod corev1.PodSpec, bot corev1.Container) *config.Config {
	t.Helper()
	var file string
	for _, v := range pod.Volumes {
		for _, m := range bot.VolumeMounts {
			if m.Name == v.Name && v.ConfigMap != nil {
				var cm corev1.ConfigMap
				decode(t, named(t, objs, "ConfigMap", v.ConfigMap.Name), &cm)
				for key, data := range cm.Data {
					if slices.Contains(bot.Args, filepath.Join(m.MountPath, key)) {
						file = filepath.Join(t.TempDir(), key)
						if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	if file == "" {
		t.Fatalf("the bot's --config %v is no key of a mounted ConfigMap", bot.Args)
	}
	known := botEnv()
	env := map[string]string{"API_KEY": "a-key-from-the-secret"}
	for _, e := range bot.Env {
		if !slices.Contains(known, e.Name) {
			t.Errorf("env %s: the bot reads no such variable", e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "botfleet-5d4f8-x2x7q"
		}
	}
	if env["INSTANCE_NAME"] == "" {
		t.Error("INSTANCE_NAME does not come from the pod's name: every pod would be bot-instance-8080")
	}
	cfg, err := config.Load(config.Sources{File: file, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatalf("the bot would not start: %v", err)
	}
	return cfg
}

// checkIngresses: every Ingress retries like nginx.conf.tmpl, waits longer
// than the bot's write timeout, the streams are not buffered and only the
// API port is public.
func checkIngresses(t *testing.T, objs []*unstructured.Unstructured, cfg *config.Config) {
	t.Helper()
	var routes []route
	for _, o := range ofKind(objs, "Ingress") {
		var ing networkingv1.Ingress
		decode(t, o, &ing)
		a := ing.Annotations
		next := strings.Fields(a["nginx.ingress.kubernetes.io/proxy-next-upstream"])
		for _, want := range []string{"error", "timeout", "http_502", "http_503", "non_idempotent"} {
			if !slices.Contains(next, want) {
				t.Errorf("Ingress %s: proxy-next-upstream %v lacks %s", ing.Name, next, want)
			}
		}
		read, err := strconv.Atoi(a["nginx.ingress.kubernetes.io/proxy-read-timeout"])
		if err != nil || time.Duration(read)*time.Second <= cfg.Server.WriteTimeout {
			t.Errorf("Ingress %s: proxy-read-timeout %q must exceed server.write_timeout %v", ing.Name, a["nginx.ingress.kubernetes.io/proxy-read-timeout"], cfg.Server.WriteTimeout)
		}
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				routes = append(routes, route{p, ing.Annotations})
			}
		}
	}
	// Streams: stream: true on both chat routes, and resumed streams.
	for _, path := range []string{"/v1/chat", "/v1/chat/completions", "/v1/chat/streams/abc"} {
		if r := match(routes, path); r == nil || r.annotations["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
			t.Errorf("%s is routed through an Ingress path without proxy-buffering off", path)
		}
	}
	// As nginx.conf.tmpl: the metrics are not public. The Ingresses reach
	// only the Service's API port.
	for _, r := range routes {
		if p := r.Backend.Service.Port; p.Name != "http" {
			t.Errorf("Ingress path %s goes to Service port %+v, not the API port http", r.Path, p)
		}
	}
}

// route is an Ingress path with its Ingress's annotations.
type route struct {
	networkingv1.HTTPIngressPath
	annotations map[string]string
}

// match returns the route that serves path, as the Ingress rules choose
// it: an Exact path first, else the longest Prefix path that matches
// element by element.
func match(routes []route, path string) *route {
	var best *route
	for i, r := range routes {
		switch {
		case *r.PathType == networkingv1.PathTypeExact && r.Path == path:
			return &routes[i]
		case *r.PathType == networkingv1.PathTypePrefix &&
			(r.Path == "/" || r.Path == path || strings.HasPrefix(path, strings.TrimSuffix(r.Path, "/")+"/")):
			if best == nil || len(r.Path) > len(best.Path) {
				best = &routes[i]
			}
		}
	}
	return best
}

// checkRedis: the bot's Redis address names a Service of the overlay; with
// Sentinel, every sentinel is a pod of the StatefulSet behind it.
func checkRedis(t *testing.T, objs []*unstructured.Unstructured, cfg *config.Config) {
	t.Helper()
	if cfg.Redis.MasterName == "" {
		named(t, objs, "Service", cfg.Redis.Host)
		return
	}
	var sts appsv1.StatefulSet
	decode(t, only(t, objs, "StatefulSet"), &sts)
	var want []string
	for i := range *sts.Spec.Replicas {
		want = append(want, fmt.Sprintf("%s-%d.%s:26379", sts.Name, i, sts.Spec.ServiceName))
	}
	if !slices.Equal(cfg.Redis.Sentinels, want) {
		t.Errorf("redis.sentinels %v, want the StatefulSet's sentinels %v", cfg.Redis.Sentinels, want)
	}
	named(t, objs, "Service", sts.Spec.ServiceName)
}

// checkSecretTemplate: the template holds no value, and each of its keys is
// a variable the bot reads.
func checkSecretTemplate(t *testing.T, o *unstructured.Unstructured) {
	t.Helper()
	var s corev1.Secret
	decode(t, o, &s)
	if len(s.Data) > 0 || len(s.StringData) == 0 {
		t.Fatalf("the template must list its keys in stringData, with no data: %+v", s)
	}
	known := botEnv()
	for k, v := range s.StringData {
		if v != "" {
			t.Errorf("%s has a value in the repository", k)
		}
		if !slices.Contains(known, k) {
			t.Errorf("%s: the bot reads no such variable", k)
		}
	}
}

func named(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q", kind, name)
	return nil
}

// decode converts o into its typed form, refusing unknown fields.
func decode(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}
