package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
	"github.com/botfleet/botfleet/pkg/proc"
)

// A supervised fleet (fleetOptions.Supervised) runs its instances as make
// fleet does: started by scripts/start_multiple_instances.sh (pid files
// with launch records in dir/run, logs in dir/logs), watched and restarted
// by bin/healthchecker with the configuration
// scripts/render_healthchecker.sh renders (strategy pidfile: a restarted
// checker adopts the running instances), stopped by
// scripts/stop_instances.sh and rolled by scripts/rolling_restart.sh. The
// harness holds no process of theirs: it finds them by their pid files.

// runDir holds the supervised instances' pid files.
func (f *fleet) runDir() string { return filepath.Join(f.dir, "run") }

// hcConfig is the health checker's configuration file and hcPIDFile its
// pid file, where make fleet keeps them (scripts/bluegreen.sh re-points
// the checker it finds there).
func (f *fleet) hcConfig() string  { return filepath.Join(f.runDir(), "healthchecker.yaml") }
func (f *fleet) hcPIDFile() string { return filepath.Join(f.runDir(), "healthchecker.pid") }

// scriptEnv is the environment of the fleet scripts for the instance on
// port: its settings (without the per-port ones the scripts set) and where
// things are.
func (f *fleet) scriptEnv(c botConfig, port int) []string {
	var env []string
	for _, kv := range f.botEnv(c, port) {
		if !strings.HasPrefix(kv, "WEB_PORT=") && !strings.HasPrefix(kv, "INSTANCE_NAME=") {
			env = append(env, kv)
		}
	}
	return append(env, "BOT_BIN="+filepath.Join(f.bin, "bot"), "FLEETCTL="+filepath.Join(f.bin, "fleetctl"),
		"RUN_DIR="+f.runDir(), "LOG_DIR="+filepath.Join(f.dir, "logs"), "CONFIG=", "LOG_LEVEL=warn",
		"HEALTHCHECKER_CONFIG="+f.hcConfig(), "LISTEN="+addr(f.hcPort), "REGISTRY_REDIS="+addr(f.redisPort), "GRACE=20")
}

// script runs scripts/NAME with ports as arguments and the scripts'
// environment; once per port when each instance has a Redis proxy of its
// own (the instances' settings differ).
func (f *fleet) script(ctx context.Context, name string, ports ...int) error {
	if f.proxies != nil && len(ports) > 1 {
		for _, p := range ports {
			if err := f.script(ctx, name, p); err != nil {
				return err
			}
		}
		return nil
	}
	args := portArgs(ports)
	cmd := exec.CommandContext(ctx, filepath.Join(f.root, "scripts", name), args...)
	cmd.Env = f.scriptEnv(f.config, ports[0])
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("scripts/%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// startSupervised starts the instances with the scripts and then the
// health checker.
func (f *fleet) startSupervised(ctx context.Context) error {
	if err := f.script(ctx, "start_multiple_instances.sh", f.botPorts...); err != nil {
		return err
	}
	render := exec.CommandContext(ctx, filepath.Join(f.root, "scripts", "render_healthchecker.sh"), append([]string{"-o", f.hcConfig()}, portArgs(f.botPorts)...)...)
	render.Env = append(f.scriptEnv(f.config, 0), f.opts.CheckerEnv...)
	if out, err := render.CombinedOutput(); err != nil {
		return fmt.Errorf("render the health checker's config: %v\n%s", err, out)
	}
	return f.startChecker(ctx)
}

func portArgs(ports []int) []string {
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = strconv.Itoa(p)
	}
	return out
}

// startChecker (re)starts bin/healthchecker and waits until it reports
// every target healthy.
func (f *fleet) startChecker(ctx context.Context) error {
	p, err := start(f.dir, "healthchecker", nil, syscall.SIGTERM, filepath.Join(f.bin, "healthchecker"), "--config", f.hcConfig())
	if err != nil {
		return fmt.Errorf("%w (build it: make build)", err)
	}
	f.checker = p
	if err := proc.WritePID(f.hcPIDFile(), p.pid()); err != nil {
		return err
	}
	return p.waitFor(ctx, 30*time.Second, "every target healthy", func() bool {
		st, err := f.checkerStatus()
		if err != nil || len(st.Targets) != len(f.botPorts) {
			return false
		}
		for _, t := range st.Targets {
			if t.State != healthcheck.StateHealthy {
				return false
			}
		}
		return true
	})
}

// checkerStatus is the health checker's GET /status.
func (f *fleet) checkerStatus() (healthcheck.StatusReport, error) {
	var st healthcheck.StatusReport
	resp, err := f.client.Get("http://" + addr(f.hcPort) + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("health checker /status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// botPID is the pid of supervised instance i (0 when none runs).
func (f *fleet) botPID(i int) int {
	id, err := proc.Find(filepath.Join(f.runDir(), "instance_"+strconv.Itoa(f.botPorts[i])+".pid"), f.botPorts[i])
	if err != nil {
		return 0
	}
	return id.PID
}

// killBot sends SIGKILL to supervised instance i and returns its pid.
func (f *fleet) killBot(i int) (int, error) {
	pid := f.botPID(i)
	if pid == 0 {
		return 0, fmt.Errorf("instance %d (port %d) is not running", i, f.botPorts[i])
	}
	return pid, syscall.Kill(pid, syscall.SIGKILL)
}

// waitBot waits until instance i is ready with a pid other than old (the
// health checker restarted it), within timeout.
func (f *fleet) waitBot(ctx context.Context, i, old int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if pid := f.botPID(i); pid != 0 && pid != old && httpOK(f.client, f.botURL(i)+"/ready") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %d (port %d) not restarted and ready within %v; see %s", i, f.botPorts[i], timeout, f.hcLog())
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (f *fleet) hcLog() string { return filepath.Join(f.dir, "logs", "healthchecker.log") }

// stopSupervised stops the health checker (it leaves the instances
// running: on_exit leave), then the instances with the script.
func (f *fleet) stopSupervised() {
	f.checker.stop(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.script(ctx, "stop_instances.sh", f.botPorts...); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
}
