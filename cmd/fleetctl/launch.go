package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/proc"
)

// launch starts argv with env and writes its pid file and launch record.
func launch(pidfile, logFile string, port int, argv, env []string, stdout io.Writer) error {
	if pidfile == "" || len(argv) == 0 {
		return cli.Exit(2, errors.New("launch: want --pidfile F -- ARGV..."))
	}
	rec, _, err := proc.Start(proc.Spec{Argv: argv, Env: env, Log: logFile, Settings: digest(settings(argv, env, port))})
	if err != nil {
		return cli.Exit(2, err)
	}
	if err := rec.Write(pidfile); err != nil {
		return cli.Exit(2, err)
	}
	fmt.Fprintln(stdout, rec.PID)
	return nil // the process stays with init once this one exits
}

// changed compares the record beside pidfile with argv and env.
func changed(pidfile string, port int, argv, env []string, stdout io.Writer) error {
	rec, err := proc.ReadRecord(pidfile)
	if err != nil {
		return cli.Exit(1, nil)
	}
	was, now := settings(rec.Argv, rec.Env, port), settings(argv, env, port)
	if digest(now) == rec.Settings {
		return nil
	}
	var keys []string
	for k, v := range now {
		if was[k] != v {
			keys = append(keys, k)
		}
	}
	for k := range was {
		if _, ok := now[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		keys = []string{"the config file's content"}
	}
	fmt.Fprintln(stdout, strings.Join(keys, " "))
	return cli.Exit(3, nil)
}

// perInstance are the variables that differ between instances by design.
var perInstance = map[string]bool{"WEB_PORT": true, "INSTANCE_NAME": true, "BOT_SERVER_PORT": true, "BOT_SERVER_INSTANCE_NAME": true}

// settings is what configures a bot instance: its command line, the
// variables the bot reads (config.Variables and BOT_CONFIG) and the content
// of its config file, with the instance's own port written {port} so that
// instances launched alike have equal settings.
func settings(argv, env []string, port int) map[string]string {
	norm := func(s string) string {
		if port > 0 {
			s = strings.ReplaceAll(s, strconv.Itoa(port), "{port}")
		}
		return s
	}
	out := map[string]string{}
	var args []string
	for _, a := range argv {
		args = append(args, norm(a))
	}
	out["argv"] = strings.Join(args, " ")
	vars := append(config.Variables(), "BOT_CONFIG")
	files := []string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if slices.Contains(vars, k) && !perInstance[k] && v != "" {
			out[k] = norm(v)
			if k == "BOT_CONFIG" {
				files = append(files, v)
			}
		}
	}
	for i, a := range argv {
		if a == "--config" && i+1 < len(argv) {
			files = append(files, argv[i+1])
		} else if f, ok := strings.CutPrefix(a, "--config="); ok {
			files = append(files, f)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			b = []byte("unreadable: " + err.Error())
		}
		sum := sha256.Sum256(b)
		out["config file "+f] = hex.EncodeToString(sum[:8])
	}
	return out
}

// digest is a short hash of settings.
func digest(s map[string]string) string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, s[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
