package contentfilter

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBlockAndFlag(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := New(Options{Words: []string{"Forbidden", "敏感词", " "}, Registerer: reg})
	for text, want := range map[string]Verdict{
		"all fine":             {},
		"this is FORBIDDEN ok": {Word: "forbidden", Blocked: true},
		"含有敏感词的消息":             {Word: "敏感词", Blocked: true},
	} {
		if got := f.Check("http", text); got != want {
			t.Errorf("%q: %+v, want %+v", text, got, want)
		}
	}
	if n := testutil.ToFloat64(f.matches.WithLabelValues("http", Block)); n != 2 {
		t.Fatalf("counted %v blocks, want 2", n)
	}
	flag := New(Options{Words: []string{"x"}, Action: Flag})
	if v := flag.Check("telegram", "xyz"); v.Blocked || v.Word != "x" {
		t.Fatalf("flag: %+v", v)
	}
	var none *Filter = New(Options{Words: []string{" "}})
	if none != nil || none.Check("http", "anything") != (Verdict{}) {
		t.Fatal("a filter without words must let everything through")
	}
}
