package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/healthcheck"
)

// defaultPause is long enough for a drain (20s grace) and a start.
const defaultPause = 2 * time.Minute

// checker talks to the health checker that config configures.
func checker(ctx context.Context, args []string, config string, d time.Duration, stdout io.Writer) error {
	if len(args) == 0 || config == "" {
		return cli.Exit(2, errors.New("checker: want addr|pause|resume --config FILE [PORT...]"))
	}
	cfg, err := healthcheck.LoadConfig(config)
	if err != nil {
		return cli.Exit(2, err)
	}
	if cfg.Listen == "" {
		return cli.Exit(2, fmt.Errorf("checker: %s sets no listen address", config))
	}
	switch args[0] {
	case "addr":
		fmt.Fprintln(stdout, cfg.Addr())
		return nil
	case "pause", "resume":
	default:
		return cli.Exit(2, fmt.Errorf("checker: unknown %q", args[0]))
	}
	client := &http.Client{Timeout: 3 * time.Minute} // pause waits for a restart under way
	addr := cfg.Addr()
	for _, p := range args[1:] {
		if _, err := strconv.Atoi(p); err != nil {
			return cli.Exit(2, fmt.Errorf("checker: bad port %q", p))
		}
		q := url.Values{"port": {p}}
		if args[0] == "pause" {
			q.Set("for", d.String())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/"+args[0]+"?"+q.Encode(), nil)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintf(stdout, "no health checker answers on %s; nothing to %s\n", addr, args[0])
			return nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			fmt.Fprintf(stdout, "health checker: %s port %s: %s", args[0], p, b)
		case http.StatusNotFound: // it does not watch that port
		default:
			return cli.Exit(2, fmt.Errorf("checker %s port %s: %s: %s", args[0], p, resp.Status, b))
		}
	}
	return nil
}
