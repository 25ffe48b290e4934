package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/proc"
)

// blueGreen switches the fleet from its instances (blue) to as many new
// ones on free ports (green) with scripts/bluegreen.sh deploy green, then
// back with scripts/bluegreen.sh rollback, under the load: the script
// starts the other colour, renders and reloads nginx, re-points the health
// checker and stops the old colour.
//
// bluegreen.sh starts a colour's instances with one environment, so they
// reach Redis directly, not through their per-instance proxies: blue is
// back on the same ports after the rollback but without its proxies, which
// is why this scenario runs after every scenario that uses them.
func (c *chaosRun) blueGreen(ctx context.Context, tr *traffic) error {
	f := c.f
	green := make([]int, len(f.botPorts))
	for i := range green {
		p, err := freePort()
		if err != nil {
			return err
		}
		green[i] = p
	}
	// A switch that failed half-way leaves no green instance behind.
	defer func() {
		cmd := exec.Command(filepath.Join(f.root, "scripts", "stop_instances.sh"), portArgs(green)...)
		cmd.Env = f.scriptEnv(f.config, 0)
		_ = cmd.Run()
	}()
	colour := func(ports []int) (primaries, backups string) {
		var pr []string
		for _, p := range ports[:f.opts.Instances] {
			pr = append(pr, strconv.Itoa(p)+":1")
		}
		return strings.Join(pr, " "), strings.Join(portArgs(ports[f.opts.Instances:]), " ")
	}
	nginx, err := nginxPath()
	if err != nil {
		return err
	}
	prefix := filepath.Join(f.dir, "nginx-fleet")
	bp, bb := colour(f.botPorts)
	gp, gb := colour(green)
	env := append(f.scriptEnv(f.config, 0), f.opts.CheckerEnv...)
	env = append(env, "BLUE_PRIMARIES="+bp, "BLUE_BACKUPS="+bb, "GREEN_PRIMARIES="+gp, "GREEN_BACKUPS="+gb,
		"NGINX_PREFIX="+prefix, "NGINX_CONF="+filepath.Join(prefix, "nginx.conf"), "NGINX_PID="+filepath.Join(prefix, "nginx.pid"),
		"NGINX="+nginx, "LISTEN="+addr(f.nginxPort["fleet"]), "DAEMON=")
	_ = os.Remove(filepath.Join(f.runDir(), "bluegreen.state"))
	var took []string
	for _, args := range [][]string{{"deploy", "green"}, {"rollback"}} {
		start := time.Now()
		cmd := exec.CommandContext(ctx, filepath.Join(f.root, "scripts", "bluegreen.sh"), args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("scripts/bluegreen.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		took = append(took, fmt.Sprintf("%s %.1f s", strings.Join(args, " "), time.Since(start).Seconds()))
		live := green
		if args[0] == "rollback" {
			live = f.botPorts
		}
		if err := c.colourLive(live); err != nil {
			return fmt.Errorf("after bluegreen.sh %s: %w", strings.Join(args, " "), err)
		}
	}
	served := 0
	if b, err := os.ReadFile(filepath.Join(prefix, "logs", "access.log")); err == nil {
		for _, p := range green {
			served += strings.Count(string(b), "upstream="+addr(p)+" ")
		}
	}
	tr.observe("bluegreen.sh switched to green (ports %s) and rolled back to blue (%s): %s; green served %d requests (nginx's access log); "+
		"after each switch the health checker watched exactly the live colour and the other one was stopped",
		strings.Join(portArgs(green), " "), strings.Join(portArgs(f.botPorts), " "), strings.Join(took, ", "), served)
	return nil
}

// colourLive checks that the health checker watches exactly ports and
// that no instance of the other colour runs.
func (c *chaosRun) colourLive(ports []int) error {
	st, err := c.f.checkerStatus()
	if err != nil {
		return err
	}
	var watched []int
	for _, t := range st.Targets {
		watched = append(watched, t.Port)
	}
	slices.Sort(watched)
	if !slices.Equal(watched, slices.Sorted(slices.Values(ports))) {
		return fmt.Errorf("the health checker watches %v, not the live colour %v", watched, ports)
	}
	entries, _ := filepath.Glob(filepath.Join(c.f.runDir(), "instance_*.pid"))
	for _, e := range entries {
		port, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(e), "instance_"), ".pid"))
		if _, err := proc.Find(e, port); err == nil && !slices.Contains(ports, port) {
			return fmt.Errorf("instance %d of the old colour still runs", port)
		}
	}
	return nil
}
