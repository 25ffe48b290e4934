package im

import (
	"encoding/json"
	"testing"
)

func TestIntIDSpellingsAreOneID(t *testing.T) {
	for _, s := range []string{"77001", "77001.0", "7.7001e4", "770010e-1", "7.7001E+4", "077001"} {
		if got, err := IntID(json.Number(s)); err != nil || got != "77001" {
			t.Errorf("IntID(%s) = %q, %v", s, got, err)
		}
	}
	if got, _ := IntID("-1001234567890"); got != "-1001234567890" {
		t.Errorf("a supergroup id: %q", got)
	}
	for _, s := range []string{"77001.5", "1e400", "9223372036854775808", "x", "1e"} {
		if got, err := IntID(json.Number(s)); err == nil {
			t.Errorf("IntID(%s) = %q, want an error", s, got)
		}
	}
}
