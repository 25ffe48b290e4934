package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/proc"
)

func TestHelpAndSettingsDigest(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"fleetctl", "--help"}, os.Getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"launch --pidfile", "pid [--port P]", "group --port P", "changed", "render-nginx", "checker addr|pause|resume"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("--help lacks %q", w)
		}
	}
	if err := run(context.Background(), []string{"fleetctl", "nope"}, os.Getenv, &out, &errb); cli.ExitCode(err) != 2 {
		t.Errorf("unknown command: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("chat: {max_message_chars: 20}\n"), 0o644)
	argv := func(p string) []string {
		return []string{"bin/bot", "--config", cfg, "--port", p, "--log-file", "logs/instance_" + p + ".log"}
	}
	env := func(p string, extra ...string) []string {
		return append([]string{"PATH=/bin", "WEB_PORT=" + p, "INSTANCE_NAME=bot-instance-" + p, "API_KEY=k"}, extra...)
	}
	a := digest(settings(argv("8080"), env("8080"), 8080))
	if b := digest(settings(argv("8081"), env("8081", "TERM=x"), 8081)); a != b {
		t.Errorf("instances launched alike differ: %s %s", a, b)
	}
	if b := digest(settings(argv("8081"), env("8081", "BOT_LLM_PROVIDER=builtin"), 8081)); a == b {
		t.Error("BOT_LLM_PROVIDER does not change the settings")
	}
	os.WriteFile(cfg, []byte("chat: {max_message_chars: 30}\n"), 0o644)
	if b := digest(settings(argv("8080"), env("8080"), 8080)); a == b {
		t.Error("the config file's content does not change the settings")
	}
}

// checker addr names the address a checker on port 0 wrote to its
// addr_file, and listen's until it has.
func TestCheckerAddrReadsTheAddrFile(t *testing.T) {
	dir := t.TempDir()
	addrFile, cfg := filepath.Join(dir, "hc.addr"), filepath.Join(dir, "hc.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\naddr_file: "+addrFile+"\n"), 0o644)
	addr := func() string {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"fleetctl", "checker", "addr", "--config", cfg}, os.Getenv, &out, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out.String())
	}
	if got := addr(); got != "127.0.0.1:0" {
		t.Fatalf("before the checker listens: %q, want listen's 127.0.0.1:0", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := proc.WriteAddr(addrFile, ln.Addr()); err != nil {
		t.Fatal(err)
	}
	if got := addr(); got != ln.Addr().String() {
		t.Fatalf("checker addr = %q, want the address in addr_file %s", got, ln.Addr())
	}
}

// upstream lists the servers of a conf rendered from the real template
// once each, though the template writes them in two upstream blocks.
func TestUpstreamListsEachServerOnce(t *testing.T) {
	t.Setenv("NGINX_TEMPLATE", filepath.Join("..", "..", "nginx", "nginx.conf.tmpl"))
	t.Setenv("PRIMARIES", "8080:1 10.0.0.2:8081:3")
	t.Setenv("BACKUPS", "8083")
	conf := filepath.Join(t.TempDir(), "nginx.conf")
	if err := run(context.Background(), []string{"fleetctl", "render-nginx", "-o", conf}, os.Getenv, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fleetctl", "upstream", conf}, os.Getenv, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "8080 weight=1, 10.0.0.2:8081 weight=3, 8083 backup\n"; got != want {
		t.Fatalf("upstream = %q, want %q", got, want)
	}
	if err := run(context.Background(), []string{"fleetctl", "upstream", filepath.Join(t.TempDir(), "none")}, os.Getenv, &out, &bytes.Buffer{}); cli.ExitCode(err) != 1 {
		t.Fatalf("a missing conf: %v, want exit 1", err)
	}
}
