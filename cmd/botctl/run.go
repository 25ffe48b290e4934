package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/redis/go-redis/v9"
)

const usage = `Usage: botctl [--config file] [--json] <command> [flags]

Manages the fleet's API keys in Redis. Connects with the bot's own Redis
settings: the --config file (default $BOT_CONFIG), then REDIS_HOST,
REDIS_PORT, REDIS_PASSWORD, REDIS_DB and BOT_REDIS_* (e.g. BOT_REDIS_ADDRS).

Commands:
  keys create [--name N] [--owner O] [--expires 90d] [--allow-ip CIDR]... [--model M]...
              [--rps N] [--rpm N] [--in-flight N] [--tpm N] [--budget N]
        make a key; its secret (bf_...) is printed once and never again
  keys list                      every key, revoked ones included
  keys show <id>                 one key with its token use
  keys revoke <id>               refuse the key and its access tokens on every instance
  keys rotate <id> [--grace 1h]  a new secret for the same key; the old one works for --grace
  tokens revoke <token id>       refuse one access token (its jti) on every instance

revoke and rotate wait until every running instance has confirmed, and
say how many did and how fast; they fail when one did not.

Flags (anywhere on the line):
  --config file   YAML configuration (default $BOT_CONFIG)
  --json          print JSON instead of text
`

// ctl holds what every command needs.
type ctl struct {
	store    *auth.Store
	limiter  *ratelimit.Limiter
	tokenTTL time.Duration
	json     bool
	out      io.Writer
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("botctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configFile := fs.String("config", getenv("BOT_CONFIG"), "")
	asJSON := fs.Bool("json", false, "")
	spec := auth.Spec{}
	var expires, grace string
	var ips, models listFlag
	fs.StringVar(&spec.Name, "name", "", "")
	fs.StringVar(&spec.Owner, "owner", "", "")
	fs.StringVar(&expires, "expires", "", "")
	fs.Var(&ips, "allow-ip", "")
	fs.Var(&models, "model", "")
	fs.IntVar(&spec.Limits.RequestsPerSecond, "rps", 0, "")
	fs.IntVar(&spec.Limits.RequestsPerMinute, "rpm", 0, "")
	fs.IntVar(&spec.Limits.MaxInFlight, "in-flight", 0, "")
	fs.IntVar(&spec.Limits.TokensPerMinute, "tpm", 0, "")
	fs.Int64Var(&spec.Limits.TokenBudget, "budget", 0, "")
	fs.StringVar(&grace, "grace", "", "")
	words, err := parse(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(words) < 2 {
		fs.Usage()
		return fmt.Errorf("name a command (see --help)")
	}
	cfg, err := config.Load(config.Sources{File: *configFile, Getenv: getenv, Client: true})
	if err != nil {
		return err
	}
	opts, err := cfg.Redis.Options("botctl")
	if err != nil {
		return err
	}
	rdb := redis.NewUniversalClient(opts)
	defer rdb.Close()
	c := &ctl{
		store:    auth.NewStore(rdb, auth.StoreOptions{Prefix: cfg.Redis.KeyPrefix}),
		limiter:  ratelimit.New(rdb, ratelimit.Options{Prefix: cfg.Redis.KeyPrefix}),
		tokenTTL: cfg.Auth.Token.TTL, json: *asJSON, out: stdout,
	}
	spec.AllowIPs, spec.Models = ips, models
	if spec.TTL, err = auth.ParseDuration(expires); err != nil {
		return fmt.Errorf("--expires: %v", err)
	}
	g, err := auth.ParseDuration(grace)
	if err != nil {
		return fmt.Errorf("--grace: %v", err)
	}
	cmd, rest := words[0]+" "+words[1], words[2:]
	need := func(n int) error {
		if len(rest) != n {
			return fmt.Errorf("%s takes %d argument(s), got %d (see --help)", cmd, n, len(rest))
		}
		return nil
	}
	switch cmd {
	case "keys create":
		if err := need(0); err != nil {
			return err
		}
		return c.create(ctx, spec)
	case "keys list":
		if err := need(0); err != nil {
			return err
		}
		return c.list(ctx)
	case "keys show":
		if err := need(1); err != nil {
			return err
		}
		return c.show(ctx, rest[0])
	case "keys revoke":
		if err := need(1); err != nil {
			return err
		}
		k, prop, err := c.store.Revoke(ctx, rest[0])
		return c.changed(err, "revoked "+rest[0], map[string]any{"key": k, "propagation": prop}, prop)
	case "keys rotate":
		if err := need(1); err != nil {
			return err
		}
		secret, k, prop, err := c.store.Rotate(ctx, rest[0], g)
		if err == nil && !c.json {
			fmt.Fprintf(c.out, "new secret of %s (shown only now):\n%s\n", k.ID, secret)
		}
		return c.changed(err, "rotated "+rest[0], map[string]any{"key": k, "secret": secret, "propagation": prop}, prop)
	case "tokens revoke":
		if err := need(1); err != nil {
			return err
		}
		prop, err := c.store.RevokeToken(ctx, rest[0], time.Now().Add(c.tokenTTL+time.Minute))
		return c.changed(err, "revoked token "+rest[0], map[string]any{"token_id": rest[0], "propagation": prop}, prop)
	}
	return fmt.Errorf("unknown command %q (see --help)", cmd)
}

// parse reads flags anywhere among the words and returns the words.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return words, nil
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (c *ctl) print(v any, text func(w io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(c.out)
	return nil
}

func (c *ctl) create(ctx context.Context, spec auth.Spec) error {
	secret, k, err := c.store.Create(ctx, spec)
	if err != nil {
		return err
	}
	return c.print(map[string]any{"key": k, "secret": secret}, func(w io.Writer) {
		fmt.Fprintf(w, "created %s (%s), expires %s\nits secret, shown only now:\n%s\n", k.ID, k.Name, k.Expires.Format(time.RFC3339), secret)
	})
}

func status(k *auth.Key) string {
	switch {
	case !k.Revoked.IsZero():
		return "revoked " + k.Revoked.Format(time.RFC3339)
	case time.Now().After(k.Expires):
		return "expired"
	}
	return "active"
}

func (c *ctl) list(ctx context.Context) error {
	keys, err := c.store.List(ctx)
	if err != nil {
		return err
	}
	return c.print(map[string]any{"keys": keys}, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tOWNER\tCREATED\tEXPIRES\tSTATUS")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Owner, k.Created.Format(time.DateOnly), k.Expires.Format(time.DateOnly), status(k))
		}
		tw.Flush()
	})
}

func (c *ctl) show(ctx context.Context, id string) error {
	k, err := c.store.Get(ctx, id)
	if err != nil {
		return err
	}
	u, err := c.limiter.Usage(ctx, id)
	if err != nil {
		return err
	}
	return c.print(map[string]any{"key": k, "usage": u}, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		l := k.Limits
		for _, row := range [][2]string{
			{"id", k.ID}, {"name", k.Name}, {"owner", k.Owner}, {"status", status(k)},
			{"created", k.Created.Format(time.RFC3339)}, {"expires", k.Expires.Format(time.RFC3339)},
			{"allow ips", fmt.Sprint(k.CIDRs)}, {"models", fmt.Sprint(k.Models)},
			{"limits", fmt.Sprintf("rps %d, rpm %d, in flight %d, tokens/min %d, budget %d", l.RequestsPerSecond, l.RequestsPerMinute, l.MaxInFlight, l.TokensPerMinute, l.TokenBudget)},
			{"usage", fmt.Sprintf("spent %d tokens, %d reserved, %d turns in flight", u.Spent, u.Reserved, u.InFlight)},
		} {
			fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
		}
		tw.Flush()
	})
}

// changed reports a revocation or rotation and how it reached the fleet;
// an instance that did not confirm is an error.
func (c *ctl) changed(err error, what string, v any, p auth.Propagation) error {
	if err != nil {
		return err
	}
	if err := c.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "%s: confirmed by %d of %d instances in %v\n", what, p.Acked, p.Instances, p.Elapsed.Round(time.Microsecond))
	}); err != nil {
		return err
	}
	if !p.Complete() {
		return fmt.Errorf("%s in Redis, but only %d of %d instances confirmed; the others drop it when their subscription reconnects, or after auth.cache_ttl", what, p.Acked, p.Instances)
	}
	return nil
}
