package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/botfleet/botfleet/pkg/cli"
)

// nginxTemplate is the template's path from the repository root, where
// the scripts run; NGINX_TEMPLATE overrides it.
const nginxTemplate = "nginx/nginx.conf.tmpl"

// upstream is one server line of nginx's upstream.
type upstream struct {
	Host   string
	Port   int
	Weight int // 0 for a backup
}

// nginxConf is what nginx/nginx.conf.tmpl is rendered from.
type nginxConf struct {
	Generated string
	Daemon    string // "", "on" or "off"
	Workers   string
	Prefix    string // "" or ending in "/"
	Listen    string
	Servers   []upstream
	Tries     int
}

var (
	listenRE  = regexp.MustCompile(`^[^\s;]+$`)
	workersRE = regexp.MustCompile(`^([0-9]+|auto)$`)
)

// nginxSettings reads the renderer's settings from the environment (see
// scripts/render_nginx.sh --help); its errors name the setting.
func nginxSettings(getenv func(string) string) (nginxConf, error) {
	get := func(k, def string) string { // set but empty is not unset
		if v, ok := os.LookupEnv(k); ok {
			return v
		}
		return def
	}
	primaries, backups := get("PRIMARIES", "8080:1 8081:1 8082:2"), get("BACKUPS", "8083")
	host := getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	c := nginxConf{Listen: getenv("LISTEN"), Workers: getenv("WORKERS"), Daemon: getenv("DAEMON"), Prefix: getenv("PREFIX")}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:18789"
	}
	if c.Workers == "" {
		c.Workers = "auto"
	}
	for _, e := range strings.Fields(primaries) {
		u, err := parseUpstream(e, host, false)
		if err != nil {
			return c, err
		}
		c.Servers = append(c.Servers, u)
	}
	if len(c.Servers) == 0 {
		return c, errors.New("PRIMARIES is empty: name at least one instance")
	}
	for _, e := range strings.Fields(backups) {
		u, err := parseUpstream(e, host, true)
		if err != nil {
			return c, err
		}
		c.Servers = append(c.Servers, u)
	}
	c.Tries = len(c.Servers)
	if t := getenv("TRIES"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return c, fmt.Errorf("bad TRIES '%s'", t)
		}
		c.Tries = n
	}
	switch {
	case !listenRE.MatchString(c.Listen):
		return c, fmt.Errorf("bad LISTEN '%s'", c.Listen)
	case !workersRE.MatchString(c.Workers):
		return c, fmt.Errorf("bad WORKERS '%s'", c.Workers)
	case c.Daemon != "" && c.Daemon != "on" && c.Daemon != "off":
		return c, fmt.Errorf("DAEMON must be on, off or empty, got '%s'", c.Daemon)
	case strings.ContainsAny(c.Prefix, " \t\n;'\""):
		return c, errors.New("PREFIX must not contain spaces, quotes or ';'")
	}
	if c.Prefix != "" {
		c.Prefix = strings.TrimSuffix(c.Prefix, "/") + "/"
	}
	c.Generated = fmt.Sprintf("Rendered by scripts/render_nginx.sh from nginx/nginx.conf.tmpl (PRIMARIES=%q BACKUPS=%q LISTEN=%s); edit the template, not this file.",
		primaries, backups, c.Listen)
	return c, nil
}

// parseUpstream parses "[host:]port[:weight]" (a backup takes no weight).
func parseUpstream(e, host string, backup bool) (upstream, error) {
	f := strings.Split(e, ":")
	u := upstream{Host: host, Weight: 1}
	var port, weight string
	switch len(f) {
	case 1:
		port = f[0]
	case 2:
		if isNum(f[0]) {
			port, weight = f[0], f[1]
		} else {
			u.Host, port = f[0], f[1]
		}
	case 3:
		u.Host, port, weight = f[0], f[1], f[2]
	default:
		return u, fmt.Errorf("bad instance '%s': want [host:]port[:weight]", e)
	}
	if u.Host == "" {
		return u, fmt.Errorf("bad instance '%s': empty host", e)
	}
	p, err := strconv.Atoi(port)
	if !isNum(port) || err != nil || p < 1 || p > 65535 {
		return u, fmt.Errorf("bad port '%s' in '%s'", port, e)
	}
	u.Port = p
	if backup {
		if weight != "" {
			return u, fmt.Errorf("backup '%s' takes no weight", e)
		}
		u.Weight = 0
		return u, nil
	}
	if weight != "" {
		w, err := strconv.Atoi(weight)
		if !isNum(weight) || err != nil || w < 1 {
			return u, fmt.Errorf("bad weight '%s' in '%s'", weight, e)
		}
		u.Weight = w
	}
	return u, nil
}

func isNum(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// renderNginx renders the template with the environment's settings to out
// (a file, written atomically) or stdout.
func renderNginx(getenv func(string) string, out string, stdout io.Writer) error {
	c, err := nginxSettings(getenv)
	if err != nil {
		return cli.Exit(2, fmt.Errorf("render-nginx: %w", err))
	}
	path := getenv("NGINX_TEMPLATE")
	if path == "" {
		path = nginxTemplate
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return cli.Exit(2, fmt.Errorf("render-nginx: %w (run from the repository root)", err))
	}
	tpl, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return cli.Exit(2, fmt.Errorf("render-nginx: %w", err))
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, c); err != nil {
		return cli.Exit(2, fmt.Errorf("render-nginx: %w", err))
	}
	if out == "" {
		if _, err := stdout.Write(b.Bytes()); err != nil {
			return cli.Exit(2, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return cli.Exit(2, err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return cli.Exit(2, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return cli.Exit(2, err)
	}
	return nil
}

// upstreamServers returns the servers of conf's first upstream block (the
// LLM turns' "botfleet"; "botfleet_store" lists the same ones), as
// "port weight=N" or "port backup", the host left out when it is
// 127.0.0.1, comma-separated: what make fleet-status shows.
func upstreamServers(conf string) (string, error) {
	src, err := os.ReadFile(conf)
	if err != nil {
		return "", err
	}
	var servers []string
	in := false
	for line := range strings.Lines(string(src)) {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		switch {
		case len(f) >= 2 && f[0] == "upstream":
			in = true
		case in && len(f) >= 1 && f[0] == "}":
			return strings.Join(servers, ", "), nil
		case in && len(f) >= 3 && f[0] == "server":
			servers = append(servers, strings.TrimPrefix(f[1], "127.0.0.1:")+" "+f[2])
		}
	}
	return "", fmt.Errorf("%s: no upstream block", conf)
}
