package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// botctl runs the command against r and returns its output and error.
func botctl(t *testing.T, r *testenv.Redis, args ...string) (string, string, error) {
	t.Helper()
	env := map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(r.Port)}
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"botctl"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestHelpAndBadCommands(t *testing.T) {
	r := testenv.StartRedis(t)
	_, help, err := botctl(t, r, "--help")
	if err != nil || !strings.Contains(help, "keys create") || !strings.Contains(help, "--json") {
		t.Fatalf("--help: %v %q", err, help)
	}
	for _, args := range [][]string{{}, {"keys"}, {"keys", "fly"}, {"keys", "show"}, {"keys", "create", "--expires", "soon"}, {"keys", "create", "--expires", "91d"}} {
		if _, _, err := botctl(t, r, args...); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want a one-line error", args, err)
		}
	}
}

func TestKeysLifecycle(t *testing.T) {
	r := testenv.StartRedis(t)
	// An instance's authenticator, to confirm the revocation.
	a := auth.New(r.Client(), auth.Options{Instance: "i1"})
	t.Cleanup(func() { a.Close() })
	out, _, err := botctl(t, r, "keys", "create", "--name", "ci", "--owner", "ops", "--allow-ip", "10.0.0.0/8", "--model", "mock-1",
		"--rps", "5", "--budget", "1000", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Key    auth.Key
		Secret string
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Secret, "bf_") ||
		created.Key.Limits.TokenBudget != 1000 || len(created.Key.CIDRs) != 1 || created.Key.Models[0] != "mock-1" {
		t.Fatalf("create: %v %s", err, out)
	}
	id := created.Key.ID
	if out, _, err := botctl(t, r, "keys", "list"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "active") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, _, err := botctl(t, r, "keys", "show", id); err != nil || !strings.Contains(out, "budget 1000") || !strings.Contains(out, "spent 0 tokens") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if out, _, err := botctl(t, r, "--json", "keys", "show", id); err != nil || !strings.Contains(out, `"usage"`) {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	out, _, err = botctl(t, r, "keys", "rotate", id, "--grace", "1h")
	if err != nil || !strings.Contains(out, "bf_") || strings.Contains(out, created.Secret) {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 10*time.Second, "the authenticator's cache to be live", a.Live)
	out, _, err = botctl(t, r, "keys", "revoke", id)
	if err != nil || !strings.Contains(out, "confirmed by 1 of 1 instances") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if out, _, _ := botctl(t, r, "keys", "list"); !strings.Contains(out, "revoked") {
		t.Fatalf("list after revoke:\n%s", out)
	}
	if _, _, err := botctl(t, r, "keys", "show", "key_000000000000"); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("show of an unknown key: %v", err)
	}
	if _, _, err := botctl(t, r, "tokens", "revoke", "not-a-jti"); err == nil {
		t.Fatal("a malformed token id was accepted")
	}
}
