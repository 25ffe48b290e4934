package feishu

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

func sh(t *testing.T, stdin []byte, script string) []byte {
	t.Helper()
	testenv.LookPath(t, "openssl")
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin = strings.NewReader(string(stdin))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return out
}

func TestSignatureMatchesOpenSSL(t *testing.T) {
	body := []byte(`{"encrypt":"abc"}`)
	ts, nonce, key := "1700000000", "n0nce", "ek"
	out := sh(t, []byte(ts+nonce+key+string(body)), "openssl dgst -sha256 | sed 's/^.*= //'")
	if got := Signature(ts, nonce, key, body); got != strings.TrimSpace(string(out)) {
		t.Fatalf("Signature = %s, openssl says %s", got, out)
	}
}

func TestDecryptOpenSSLCiphertext(t *testing.T) {
	key := "my-encrypt-key"
	sum := sha256.Sum256([]byte(key))
	iv := "000102030405060708090a0b0c0d0e0f"
	plain := `{"schema":"2.0","header":{"event_id":"e"}}`
	ct := sh(t, []byte(plain), "openssl enc -aes-256-cbc -K "+hex.EncodeToString(sum[:])+" -iv "+iv)
	ivb, _ := hex.DecodeString(iv)
	payload := base64.StdEncoding.EncodeToString(append(ivb, ct...))
	got, err := Decrypt(key, payload)
	if err != nil || string(got) != plain {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if Encrypt(key, []byte(plain), ivb) != payload {
		t.Fatal("Encrypt differs from openssl")
	}
	if _, err := Decrypt("other", payload); err == nil {
		t.Fatal("decrypted with the wrong key")
	}
}

// Feishu's documentation example: "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="
// with the key "test key" is "hello world".
func TestDecryptPublishedExample(t *testing.T) {
	got, err := Decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
	if err != nil || string(got) != "hello world" {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
}

func TestParseMentions(t *testing.T) {
	a := New(Options{VerificationToken: "vt", BotOpenID: "ou_bot"})
	body := []byte(`{"schema":"2.0","header":{"event_id":"ev1","token":"vt","create_time":"1","event_type":"im.message.receive_v1"},
	"event":{"sender":{"sender_id":{"open_id":"ou_u"},"sender_type":"user"},"message":{"message_id":"om_1","chat_id":"oc_1",
	"chat_type":"group","message_type":"text","content":"{\"text\":\"@_user_1 ask @_user_2 please\"}",
	"mentions":[{"key":"@_user_1","id":{"open_id":"ou_bot"},"name":"Bot"},{"key":"@_user_2","id":{"open_id":"ou_tom"},"name":"Tom"}]}}}`)
	in, err := a.Parse(context.Background(), http.Header{}, body)
	if err != nil {
		t.Fatal(err)
	}
	m := in.Message
	if !m.Mentioned || m.Text != "ask @Tom please" || m.Mentions[0] != "ou_tom" || m.Reply["message_id"] != "om_1" || !m.IsGroup() {
		t.Fatalf("%+v", m)
	}
	// With an encrypt key, a plain body is refused and a signed encrypted one accepted.
	a = New(Options{VerificationToken: "vt", EncryptKey: "k", Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if _, err := a.Parse(context.Background(), http.Header{}, body); err == nil {
		t.Fatal("plain event accepted with an encrypt key")
	}
	enc := []byte(`{"encrypt":"` + Encrypt("k", body, make([]byte, 16)) + `"}`)
	ts := strconv.Itoa(1700000000 - 60)
	h := http.Header{"X-Lark-Request-Timestamp": {ts}, "X-Lark-Request-Nonce": {"x"}, "X-Lark-Signature": {Signature(ts, "x", "k", enc)}}
	if in, err := a.Parse(context.Background(), h, enc); err != nil || in.Message == nil || in.Message.EventID != "ev1" {
		t.Fatalf("encrypted: %v %+v", err, in)
	}
}
