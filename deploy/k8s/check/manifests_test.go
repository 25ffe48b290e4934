package check

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The overlays a user applies. testdata/prod-monitoring is prod with both
// optional components, as its README line says to write it.
var overlays = []string{"../overlays/dev", "../overlays/prod", "testdata/prod-monitoring"}

// prometheusOperator is the release whose ServiceMonitor CRD the
// ServiceMonitor is checked against, from that project's Go module.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

func TestManifests(t *testing.T) {
	c := startCluster(t)
	c.install(t, readYAML(t, serviceMonitorCRD(t)))

	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := build(t, dir)
			c.install(t, ofKind(objs, "Namespace"))
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					continue
				}
				if err := c.apply(o, true); err != nil {
					t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
				}
			}
			checkBot(t, objs)
		})
	}
	t.Run("secret template", func(t *testing.T) {
		objs := readYAML(t, "../secret.example.yaml")
		secret := only(t, objs, "Secret")
		secret.SetNamespace("botfleet")
		if err := c.apply(secret, true); err != nil {
			t.Error(err)
		}
		checkSecretTemplate(t, secret)
	})

	// Each is a real overlay with one mistake; the server must refuse it.
	broken, err := os.ReadDir("testdata/broken")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range broken {
		t.Run("broken/"+e.Name(), func(t *testing.T) {
			dir := filepath.Join("testdata/broken", e.Name())
			want := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, "want-error")))))
			var errs []string
			for _, o := range build(t, dir) {
				if o.GetKind() == "Namespace" {
					continue
				}
				if err := c.apply(o, true); err != nil {
					errs = append(errs, err.Error())
				}
			}
			if len(errs) == 0 {
				t.Fatalf("every object was accepted; want an error containing %q", want)
			}
			if !strings.Contains(strings.Join(errs, "\n"), want) {
				t.Fatalf("want an error containing %q, got:\n%s", want, strings.Join(errs, "\n"))
			}
		})
	}
}

// build runs kustomize on dir, as kubectl apply -k would.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: obj})
	}
	return objs
}

// readYAML reads the objects of a multi-document YAML file.
func readYAML(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(string(b), "\n---") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if obj != nil {
			objs = append(objs, &unstructured.Unstructured{Object: obj})
		}
	}
	return objs
}

// serviceMonitorCRD returns the path of the ServiceMonitor CRD shipped in
// prometheus-operator's Go module, fetched by the go command (checked
// against the checksum database) into the module cache.
func serviceMonitorCRD(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", prometheusOperator).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", prometheusOperator, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", prometheusOperator, err, mod.Error)
	}
	return filepath.Join(mod.Dir, "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml")
}

// cluster is a kube-apiserver on etcd, and clients of it.
type cluster struct {
	dyn      dynamic.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	warnings *warnings
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	start := time.Now()
	s := testenv.StartKubeAPIServer(t, testenv.StartEtcd(t))
	t.Logf("kube-apiserver ready in %v", time.Since(start).Round(time.Millisecond))
	w := &warnings{}
	cfg := &rest.Config{
		Host: s.URL, BearerToken: s.Token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: s.CAFile},
		WarningHandler:  w,
		QPS:             100, Burst: 200,
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{
		dyn:      dynamic.NewForConfigOrDie(cfg),
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		warnings: w,
	}
}

// install creates objs for real (namespaces, CRDs: what other objects need)
// and waits until a CRD serves its kind.
func (c *cluster) install(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := c.apply(o, false); err != nil {
			t.Fatalf("install %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true,
			func(context.Context) (bool, error) {
				c.mapper.Reset()
				_, err := c.mapper.RESTMappings(schema.GroupKind{Group: group, Kind: kind})
				return err == nil, nil
			})
		if err != nil {
			t.Fatalf("CRD %s is not served: %v", o.GetName(), err)
		}
	}
}

// apply sends o as a server-side apply with strict field validation (an
// unknown or duplicate field is an error, not a warning), as a dry run
// unless told otherwise. A warning from the server is an error too.
func (c *cluster) apply(o *unstructured.Unstructured, dryRun bool) error {
	gvk := o.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		ns := o.GetNamespace()
		if ns == "" {
			return fmt.Errorf("no namespace: every namespaced object must get one from its overlay")
		}
		ri = c.dyn.Resource(m.Resource).Namespace(ns)
	}
	body, err := json.Marshal(o.Object)
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "botfleet-check", Force: &force, FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.warnings.take()
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
	if err != nil {
		return err
	}
	if w := c.warnings.take(); len(w) > 0 {
		return fmt.Errorf("accepted with warnings: %s", strings.Join(w, "; "))
	}
	return nil
}

// warnings collects the API server's Warning headers.
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.seen
	w.seen = nil
	return s
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// only returns the one object of kind in objs, failing if there is not
// exactly one.
func only(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := ofKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want one %s, found %d", kind, len(found))
	}
	return found[0]
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
