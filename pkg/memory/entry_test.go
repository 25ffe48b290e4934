package memory

import "testing"

func TestEntryRoundTrip(t *testing.T) {
	for _, c := range []string{"", "plain", "a:b:c", "多行\n内容 with : colons", "u1:2:3"} {
		for _, role := range []byte{'u', 'a'} {
			raw := string(appendEntry(nil, role, 42, 1795458811, c))
			var e Entry
			if err := decodeEntry(raw, &e); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			want := Entry{Role: map[byte]string{'u': "user", 'a': "assistant"}[role], Content: c, Turn: 42, Time: 1795458811}
			if e != want {
				t.Fatalf("%q decoded to %+v, want %+v", raw, e, want)
			}
		}
	}
	for _, bad := range []string{"", "x1:2:c", "u:2:c", "u1:c", "uX:2:c", "u1:Y:c"} {
		var e Entry
		if err := decodeEntry(bad, &e); err == nil {
			t.Errorf("%q decoded without error to %+v", bad, e)
		}
	}
}
