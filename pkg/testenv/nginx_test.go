package testenv_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// render runs scripts/render_nginx.sh with env and returns the config.
func render(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(moduleRoot(t), "scripts", "render_nginx.sh"))
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, stderr.String())
	}
	return string(out), nil
}

// TestRenderedConfigsPassNginxT renders the template for several fleets and
// checks every result, and the committed nginx/nginx.conf, with nginx -t.
func TestRenderedConfigsPassNginxT(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"local fleet", nil, []string{
			"server 127.0.0.1:8080 weight=1 max_fails=1 fail_timeout=2s;",
			"server 127.0.0.1:8081 weight=1 max_fails=1 fail_timeout=2s;",
			"server 127.0.0.1:8082 weight=2 max_fails=1 fail_timeout=2s;",
			"server 127.0.0.1:8083 backup max_fails=1 fail_timeout=2s;",
			"listen 127.0.0.1:18789;",
			"limit_conn perip 512;",
			"client_header_timeout 10s;",
		}},
		{"one instance", []string{"PRIMARIES=9000", "BACKUPS="}, []string{"server 127.0.0.1:9000 weight=1 "}},
		{"many", []string{"PRIMARIES=9000:1 9001:2 9002:3 9003:1 9004:1 9005:5 localhost:9006:2", "BACKUPS=9100 9101", "LISTEN=127.0.0.1:18000"},
			[]string{"server localhost:9006 weight=2 ", "server 127.0.0.1:9101 backup "}},
		{"no backup", []string{"PRIMARIES=9000:1 9001:1", "BACKUPS="}, nil},
		{"absolute prefix", []string{"PREFIX=" + testenv.NginxPrefix(t), "DAEMON=off", "WORKERS=1"}, []string{"daemon off;", "worker_processes 1;"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf, err := render(t, c.env...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(conf, w) {
					t.Errorf("rendered config lacks %q", w)
				}
			}
			if c.name == "no backup" && strings.Contains(conf, " backup max_fails") {
				t.Errorf("config with BACKUPS empty has a backup server")
			}
			if out, err := testenv.NginxTest(t, conf); err != nil {
				t.Fatalf("%v\n%s\n%s", err, out, conf)
			}
		})
	}
	t.Run("committed nginx.conf", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(moduleRoot(t), "nginx", "nginx.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := testenv.NginxTest(t, string(b)); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		fresh, err := render(t)
		if err != nil {
			t.Fatal(err)
		}
		if fresh != string(b) {
			t.Errorf("nginx/nginx.conf differs from the template's rendering; run: scripts/render_nginx.sh -o nginx/nginx.conf")
		}
	})
}

func TestRenderRejectsBadInstances(t *testing.T) {
	for _, env := range [][]string{
		{"PRIMARIES="},
		{"PRIMARIES=8080:0"},
		{"PRIMARIES=80800"},
		{"PRIMARIES=8080:x"},
		{"BACKUPS=8083:2"},
		{"LISTEN=1.2.3.4:80; evil"},
		{"DAEMON=maybe"},
		{"PREFIX=/tmp/a b"},
	} {
		if conf, err := render(t, env...); err == nil {
			t.Errorf("%v: rendered without error:\n%s", env, conf)
		} else if !strings.Contains(err.Error(), "render_nginx:") {
			t.Errorf("%v: error without a message: %v", env, err)
		}
	}
}

// TestStartNginxAndReload runs the real nginx from a prefix and reloads it
// with a changed configuration.
func TestStartNginxAndReload(t *testing.T) {
	backend := func(body string) string {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
			io.WriteString(w, body)
		})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	a, b := backend("a"), backend("b")
	listen := testenv.Addr(testenv.FreePort(t))
	conf, err := render(t, "PRIMARIES="+a, "BACKUPS=", "LISTEN="+listen, "WORKERS=1")
	if err != nil {
		t.Fatal(err)
	}
	n := testenv.StartNginx(t, conf)
	get := func(path string, hdr ...string) (string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", n.URL(path), nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		// A fresh connection each time: an old worker may still hold an
		// idle keep-alive connection for a moment after a reload.
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body), resp.Header
	}
	if body, _ := get("/health"); body != "healthy\n" {
		t.Fatalf("/health = %q, want the seed's %q", body, "healthy\n")
	}
	body, h := get("/x")
	if body != "a" || len(h.Get("X-Seen-Request-Id")) != 32 {
		t.Fatalf("before reload: body %q, request id %q; want a and nginx's 32-hex $request_id", body, h.Get("X-Seen-Request-Id"))
	}
	if _, h := get("/x", "X-Request-Id", "client-id-1"); h.Get("X-Seen-Request-Id") != "client-id-1" {
		t.Errorf("a client's valid X-Request-Id became %q; want it passed through", h.Get("X-Seen-Request-Id"))
	}
	if _, h := get("/x", "X-Request-Id", "bad id with spaces"); len(h.Get("X-Seen-Request-Id")) != 32 {
		t.Errorf("an invalid client X-Request-Id became %q; want nginx's own id", h.Get("X-Seen-Request-Id"))
	}
	conf, err = render(t, "PRIMARIES="+b, "BACKUPS=", "LISTEN="+listen, "WORKERS=1")
	if err != nil {
		t.Fatal(err)
	}
	pid := n.Pid()
	n.Reload(conf)
	if body, _ := get("/x"); body != "b" {
		t.Fatalf("after reload: body %q, want b", body)
	}
	if n.Pid() != pid {
		t.Errorf("reload replaced the master")
	}
	// nginx logs a request just after answering it.
	if !testenv.Eventually(2*time.Second, func() bool { return strings.Contains(n.AccessLog(), "upstream=127.0.0.1:"+b+" ") }) {
		t.Errorf("access log lacks the upstream address:\n%s", n.AccessLog())
	}
}

// TestNginxErrorsAreJSON sends what nginx refuses itself — a malformed
// request, a long URI, a huge header, a big body, an unknown HTTP version —
// and /metrics, which the public listener does not serve, to the real
// nginx: every answer is {"error":{"code","message"}} with the status.
func TestNginxErrorsAreJSON(t *testing.T) {
	listen := testenv.Addr(testenv.FreePort(t))
	conf, err := render(t, "PRIMARIES="+strconv.Itoa(testenv.FreePort(t)), "BACKUPS=", "LISTEN="+listen, "WORKERS=1")
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartNginx(t, conf)
	long := strings.Repeat("a", 9000)
	cases := []struct {
		req    string
		status int
		code   string
	}{
		{"GARBAGE\r\n\r\n", 400, "bad_request"},
		{"GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"},
		{"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + long + "\r\n\r\n", 431, "header_too_large"},
		{"POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n", 413, "payload_too_large"},
		{"GET /x HTTP/3.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"},
		{"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
		{"GET //metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
		{"GET /.botfleet-error HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
		{"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 503, "unavailable"}, // nothing listens upstream
	}
	for _, c := range cases {
		conn, err := net.DialTimeout("tcp", listen, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, strings.Replace(c.req, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			t.Fatalf("%.40q: %v", c.req, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || e.Error.Code != c.code || e.Error.Message == "" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%.40q: %d %s %q; want %d with JSON error code %q", c.req, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.code)
		}
	}
}
