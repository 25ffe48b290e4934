package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// FuzzToken feeds arbitrary Bearer credentials to the token parser and the
// key shape check: no input may panic, and only a token signed with the
// configured secret may pass.
func FuzzToken(f *testing.F) {
	o := TokenOptions{Secrets: []Secret{secretA}}
	o.setDefaults()
	now := time.Unix(1_800_000_000, 0)
	good, err := o.sign("key_0123456789ab", now, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good.Value, "eyJhbGciOiJub25lIn0.e30.", "a.b.c", "bf_" + strings.Repeat("a", 64), "..", "e30.e30.e30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_ = wellFormed(raw)
		claims, err := o.parse(raw, func() time.Time { return now })
		if err == nil {
			if claims.Subject == "" || !validTokenID(claims.ID) {
				t.Fatalf("accepted %q with claims %+v", raw, claims)
			}
			i := strings.LastIndexByte(raw, '.')
			mac := hmac.New(sha256.New, secretA.Key)
			mac.Write([]byte(raw[:i]))
			if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != raw[i+1:] {
				t.Fatalf("accepted a token not signed with the secret: %q", raw)
			}
		}
	})
}
