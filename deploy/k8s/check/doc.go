// Package check validates the Kubernetes manifests in deploy/k8s against a
// real API server. Its test builds each overlay with kustomize (the
// sigs.k8s.io/kustomize/api library, the code behind kubectl apply -k),
// starts etcd (Debian's etcd-server) and kube-apiserver (built from
// k8s.io/kubernetes, a tool of this module) on loopback, and applies every
// object with server-side apply, dry run and strict field validation: the
// server decodes each object into its type, runs its validation and
// admission (Pod Security included), and checks custom resources against
// their CRD's schema (the ServiceMonitor against prometheus-operator's own
// CRD). Unknown fields, wrong types, missing required fields and any
// warning fail the test; testdata/broken holds overlays broken on purpose,
// each of which must fail. It also checks what no schema knows: the bot's
// config in the ConfigMap loads with the bot's own loader, every
// environment variable is one the bot reads, and the termination grace
// covers the drain. TestRedisSentinelSet runs the dev overlay's Sentinel
// set the way its StatefulSet does, on loopback addresses: first start,
// failover, and the dead master rejoining as a replica.
//
// It is a module of its own so that Kubernetes' many dependencies stay out
// of the bot's go.mod (and out of its binary): make test runs it.
package check
