package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/ratelimit"
)

// createdKey is POST /admin/api/keys's and rotate's answer.
type createdKey struct {
	Key    auth.Key `json:"key"`
	Secret string   `json:"secret"`
}

func (f *fixture) authenticate(secret string) error {
	_, err := f.auth.Authenticate(context.Background(), secret, netip.MustParseAddr("127.0.0.1"))
	return err
}

// A key made in the console works at once; its secret is in the create's
// answer only (never in a read, never in the audit log); rotating gives a
// new one and ends the old; revoking ends the key; every write is
// audit-logged with who made it.
func TestKeysCreateRotateRevoke(t *testing.T) {
	f := newFixture(t, true)
	browser, token := f.login(t)
	a := f.do(t, browser, "POST", "/admin/api/keys",
		`{"name":"web","owner":"team-a","expires_in":"7d","allow_ips":["127.0.0.0/8"],"models":["builtin"],"limits":{"rps":5,"in_flight":2}}`,
		"Content-Type", "application/json", "X-CSRF-Token", token)
	var made createdKey
	if a.status != 201 || json.Unmarshal(a.body, &made) != nil {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	k := made.Key
	if !strings.HasPrefix(made.Secret, auth.SecretPrefix) || k.Name != "web" || k.Owner != "team-a" || k.Limits.RequestsPerSecond != 5 ||
		k.Limits.MaxInFlight != 2 || k.Expires.Sub(k.Created) != 7*24*time.Hour || len(k.CIDRs) != 1 || k.Models[0] != "builtin" {
		t.Fatalf("created %+v", made)
	}
	if err := f.authenticate(made.Secret); err != nil {
		t.Fatalf("the new key: %v", err)
	}

	list := f.do(t, browser, "GET", "/admin/api/keys", "")
	var keys struct {
		Keys []struct {
			auth.Key
			Usage *ratelimit.Usage `json:"usage"`
		} `json:"keys"`
	}
	if list.status != 200 || json.Unmarshal(list.body, &keys) != nil || len(keys.Keys) != 1 || keys.Keys[0].ID != k.ID || keys.Keys[0].Usage == nil {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	one := f.do(t, browser, "GET", "/admin/api/keys/"+k.ID, "")
	if one.status != 200 || !strings.Contains(string(one.body), `"id":"`+k.ID+`"`) {
		t.Fatalf("get: %d %s", one.status, one.body)
	}
	for name, body := range map[string][]byte{"the list": list.body, "the key": one.body, "the audit log": []byte(f.logs.String())} {
		if strings.Contains(string(body), made.Secret) || strings.Contains(string(body), `"secret"`) {
			t.Errorf("%s shows the secret: %s", name, body)
		}
	}

	a = f.do(t, browser, "POST", "/admin/api/keys/"+k.ID+"/rotate", "", "X-CSRF-Token", token)
	var rotated createdKey
	if a.status != 200 || json.Unmarshal(a.body, &rotated) != nil || rotated.Secret == "" || rotated.Secret == made.Secret || rotated.Key.ID != k.ID {
		t.Fatalf("rotate: %d %s", a.status, a.body)
	}
	if err := f.authenticate(made.Secret); err == nil {
		t.Fatal("the old secret still works after a rotation without grace")
	}
	if err := f.authenticate(rotated.Secret); err != nil {
		t.Fatalf("the rotated secret: %v", err)
	}

	a = f.do(t, browser, "DELETE", "/admin/api/keys/"+k.ID, "", "X-CSRF-Token", token)
	if a.status != 200 || !strings.Contains(string(a.body), `"revoked":"`) || !strings.Contains(string(a.body), `"propagation":{"instances":1,"acked":1`) {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	if err := f.authenticate(rotated.Secret); !errors.Is(err, auth.ErrKeyRevoked) {
		t.Fatalf("the revoked key: %v, want %v", err, auth.ErrKeyRevoked)
	}
	if a := f.do(t, browser, "POST", "/admin/api/keys/"+k.ID+"/rotate", "", "X-CSRF-Token", token); a.status != 401 || a.code() != "key_revoked" {
		t.Fatalf("rotating a revoked key: %d %s", a.status, a.body)
	}
	logs := f.logs.String()
	for _, want := range []string{`"msg":"admin: create_key","audit":true`, `"msg":"admin: rotate_key","audit":true`, `"msg":"admin: revoke_key","audit":true`,
		`"msg":"admin: rotate_key refused"`, `"target":"` + k.ID + `"`, `"principal":"session:`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, rotated.Secret) {
		t.Errorf("the audit log holds a secret:\n%s", logs)
	}
}

// A key write from the session wants its CSRF token; a script's admin key
// needs none. Bad bodies are a clear 4xx, refused in the audit log too.
func TestKeyWritesWantTheCSRFTokenAndAValidBody(t *testing.T) {
	f := newFixture(t, true)
	browser, token := f.login(t)
	spec := `{"name":"ci"}`
	for _, hdr := range [][]string{{"Content-Type", "application/json"}, {"Content-Type", "application/json", "X-CSRF-Token", token + "x"}} {
		if a := f.do(t, browser, "POST", "/admin/api/keys", spec, hdr...); a.status != 403 || a.code() != "csrf_failed" {
			t.Fatalf("create without the token: %d %s, want 403 csrf_failed", a.status, a.body)
		}
	}
	a := f.do(t, http.DefaultClient, "POST", "/admin/api/keys", spec, "Content-Type", "application/json", "Authorization", "Bearer "+adminKey)
	var made createdKey
	if a.status != 201 || json.Unmarshal(a.body, &made) != nil || made.Key.Expires.Sub(made.Key.Created) != auth.MaxTTL {
		t.Fatalf("script create with the admin key: %d %s", a.status, a.body)
	}
	for _, path := range []string{"/admin/api/keys/" + made.Key.ID, "/admin/api/keys/" + made.Key.ID + "/rotate"} {
		method := "POST"
		if !strings.HasSuffix(path, "/rotate") {
			method = "DELETE"
		}
		if a := f.do(t, browser, method, path, ""); a.status != 403 || a.code() != "csrf_failed" {
			t.Errorf("%s %s without the token: %d %s, want 403 csrf_failed", method, path, a.status, a.body)
		}
	}
	if err := f.authenticate(made.Secret); err != nil {
		t.Fatalf("the key after refused writes: %v", err)
	}
	asJSON := []string{"Content-Type", "application/json", "X-CSRF-Token", token}
	for _, c := range []struct {
		body string
		hdr  []string
		code string
	}{
		{`{"name":"x","expires_in":"91d"}`, asJSON, "invalid_key_spec"},
		{`{"name":"x","expires_in":"soon"}`, asJSON, "invalid_request"},
		{`{"name":"x","allow_ips":["nowhere"]}`, asJSON, "invalid_key_spec"},
		{`{"name":"x","limits":{"rps":-1}}`, asJSON, "invalid_key_spec"},
		{`{"name":"x","colour":"red"}`, asJSON, "invalid_json"},
		{`{"name":`, asJSON, "invalid_json"},
		{`{"name":"x"}`, []string{"X-CSRF-Token", token}, "unsupported_media_type"},
		{`{"name":"` + strings.Repeat("x", 20000) + `"}`, asJSON, "too_large"},
	} {
		if a := f.do(t, browser, "POST", "/admin/api/keys", c.body, c.hdr...); a.status/100 != 4 || a.code() != c.code {
			t.Errorf("create %.40s: %d %s, want %s", c.body, a.status, a.body, c.code)
		}
	}
	if a := f.do(t, browser, "DELETE", "/admin/api/keys/key_000000000000", "", "X-CSRF-Token", token); a.status != 404 || a.code() != "key_not_found" {
		t.Errorf("revoke an unknown key: %d %s", a.status, a.body)
	}
	if a := f.do(t, browser, "POST", "/admin/api/tokens/revoke", `{}`, asJSON...); a.status != 400 {
		t.Errorf("revoke a token without its id: %d %s", a.status, a.body)
	}
	if !strings.Contains(f.logs.String(), `"msg":"admin: create_key refused"`) || !strings.Contains(f.logs.String(), `"code":"invalid_key_spec"`) {
		t.Errorf("refused creates are not audit-logged:\n%s", f.logs.String())
	}
}
