package testenv

import (
	"net/http"
	"strings"
	"testing"
)

// JSONRequest is a request of the JSON body to url with the Bearer key and
// the given extra header name, value pairs (an empty value removes the
// header). A URL that does not parse fails the test.
func JSONRequest(t testing.TB, method, url, key, body string, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	return req
}
