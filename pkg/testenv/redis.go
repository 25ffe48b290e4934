package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server (or redis-sentinel) process owned by one test.
type Redis struct {
	// Port is the loopback port it listens on; it stays the same across
	// Stop and Start, so clients reconnect to the restarted server.
	Port int
	// Addr is "127.0.0.1:Port".
	Addr string
	// TLS holds the certificates when the server speaks only TLS.
	TLS *TLSFiles

	t    testing.TB
	dir  string
	path string
	argv []string
	// opts is how this package's clients reach it (password, TLS).
	opts  redis.Options
	mu    sync.Mutex
	cmd   *exec.Cmd
	admin *redis.Client
}

// RedisOptions are the extras of StartRedisWith.
type RedisOptions struct {
	// Password sets requirepass (and masterauth, for replicas); it is
	// noted as a secret no log may hold (NoteSecret).
	Password string
	// TLS makes the server speak only TLS on Port, with certificates made
	// for the test (see TLSFiles); clients must present the client
	// certificate.
	TLS bool
	// Args are more redis-server options, e.g. "--replicaof", "127.0.0.1 6380".
	Args []string
}

// StartRedis starts a standalone redis-server on a free loopback port with
// its data in a temporary folder, waits until it answers PING, and stops it
// when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWith is StartRedis with a password, TLS or more options.
func StartRedisWith(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	r := newRedis(t, "redis-server")
	r.argv = []string{
		"--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
		"--logfile", filepath.Join(r.dir, "redis.log"),
	}
	if o.TLS {
		r.TLS = NewTLSFiles(t)
		r.argv = append(r.argv, "--port", "0", "--tls-port", strconv.Itoa(r.Port),
			"--tls-cert-file", r.TLS.ServerCert, "--tls-key-file", r.TLS.ServerKey,
			"--tls-ca-cert-file", r.TLS.CA, "--tls-auth-clients", "yes", "--tls-replication", "yes")
		r.opts.TLSConfig = r.TLS.ClientConfig(t)
	} else {
		r.argv = append(r.argv, "--port", strconv.Itoa(r.Port))
	}
	if o.Password != "" {
		NoteSecret(o.Password)
		r.argv = append(r.argv, "--requirepass", o.Password, "--masterauth", o.Password)
		r.opts.Password = o.Password
	}
	r.argv = append(r.argv, o.Args...)
	r.Start()
	return r
}

// newRedis prepares a process of program on a free port; the caller sets
// argv and starts it.
func newRedis(t testing.TB, program string) *Redis {
	t.Helper()
	r := &Redis{t: t, path: LookPath(t, program), dir: t.TempDir()}
	r.Port = FreePort(t)
	r.Addr = Addr(r.Port)
	r.opts = redis.Options{Addr: r.Addr}
	t.Cleanup(func() { r.Stop() })
	return r
}

// Start starts the server again after Stop, on the same port.
func (r *Redis) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	cmd := exec.Command(r.path, r.argv...)
	if err := startGroup(cmd); err != nil {
		r.t.Fatalf("testenv: start %s: %v", filepath.Base(r.path), err)
	}
	r.cmd = cmd
	opts := r.opts
	opts.MaxRetries = -1
	c := redis.NewClient(&opts)
	defer c.Close()
	err := poll(10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		r.t.Fatalf("testenv: %s on %s did not answer PING: %v\n%s", filepath.Base(r.path), r.Addr, err, r.Log())
	}
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	killGroup(r.cmd, syscall.SIGKILL)
	r.cmd = nil
}

// Replicated writes a key and waits (WAIT, up to 200 ms) for n replicas
// to acknowledge it, and returns how many did: the replicas the master
// streams its writes to. INFO is no help: after a diskless sync it calls
// a replica online while the master holds the stream back until the
// replica's first acknowledgement, up to a second later. On a Cluster
// node the key is one of the node's own slots.
func (r *Redis) Replicated(n int) int {
	r.command("ping") // makes the admin client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i := 0; i < 256; i++ {
		pipe := r.admin.Pipeline()
		set := pipe.Set(ctx, "testenv:replicated:"+strconv.Itoa(i), 1, time.Minute)
		wait := pipe.Do(ctx, "wait", n, 200)
		_, _ = pipe.Exec(ctx)
		if err := set.Err(); err != nil {
			if redis.HasErrorPrefix(err, "MOVED") {
				continue
			}
			return 0
		}
		got, _ := wait.Int()
		return got
	}
	return 0
}

// Pause stops the server's process (SIGSTOP) without killing it: it
// answers nothing, and a replica falls behind its master, until Resume.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, sig)
	}
}

// Log returns the server's log file so far.
func (r *Redis) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	return string(b)
}

// Client returns a client of the server, closed when the test ends.
func (r *Redis) Client() *redis.Client {
	opts := r.opts
	c := redis.NewClient(&opts)
	r.t.Cleanup(func() { c.Close() })
	return c
}

// Name is "standalone".
func (r *Redis) Name() string { return "standalone" }

// UniversalClient is Client.
func (r *Redis) UniversalClient() redis.UniversalClient { return r.Client() }

// Env is the bot's configuration for this server, by its seed names.
func (r *Redis) Env() map[string]string {
	env := map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(r.Port)}
	if r.opts.Password != "" {
		env["REDIS_PASSWORD"] = r.opts.Password
	}
	if r.TLS != nil {
		for k, v := range r.TLS.Env() {
			env[k] = v
		}
	}
	return env
}

// poll calls f until it returns nil or d has passed, and returns its last
// error.
func poll(d time.Duration, f func() error) error {
	var err error
	Eventually(d, func() bool {
		err = f()
		return err == nil
	})
	return err
}

// command runs one command on this server, with a short deadline and no
// retries, on a client the test helpers share.
func (r *Redis) command(args ...any) *redis.Cmd {
	r.mu.Lock()
	if r.admin == nil {
		opts := r.opts
		opts.MaxRetries = -1
		r.admin = redis.NewClient(&opts)
		r.t.Cleanup(func() { r.admin.Close() })
	}
	c := r.admin
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Do(ctx, args...)
}

// text runs a command like command and returns its reply as text, "" on
// an error (which the callers' polls retry).
func (r *Redis) text(args ...any) string {
	v, err := r.command(args...).Result()
	if err != nil {
		return ""
	}
	return fmt.Sprint(v)
}

// running reports whether the process is started (not stopped).
func (r *Redis) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// addrs are the servers' addresses.
func addrs(rs []*Redis) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	return out
}
