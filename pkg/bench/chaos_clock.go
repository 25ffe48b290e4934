package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockSkew is the skew faketime is asked for.
const clockSkew = "+1h"

// libfaketime is Debian's faketime preload library (package libfaketime,
// pulled in by faketime), or "".
func libfaketime() string {
	m, _ := filepath.Glob("/usr/lib/*/faketime/libfaketime.so.1")
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// skewOneClock starts one more instance under faketime (LD_PRELOAD
// libfaketime, FAKETIME=+1h) beside the fleet: it joins the IM queue's
// consumer group, so it takes jobs and their send leases from the load's
// events. It measures the clock the instance actually runs on (its HTTP
// Date header against the harness's clock) and whether the library is
// loaded in it, lets it work for 8 s and stops it (SIGTERM).
//
// The skewed instance is started by the harness, not by
// scripts/rolling_restart.sh: with LD_PRELOAD in the scripts' environment
// the restarted instance never came up (every program of the script ran
// preloaded).
func (c *chaosRun) skewOneClock(ctx context.Context, tr *traffic) error {
	lib := libfaketime()
	if lib == "" {
		return errors.New("libfaketime not found (/usr/lib/*/faketime/libfaketime.so.1): install faketime (scripts/install_deps.sh)")
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	cfg := c.f.config
	cfg.Env = append(slices.Clone(cfg.Env), "LD_PRELOAD="+lib, "FAKETIME="+clockSkew)
	p, err := c.f.startBot(ctx, cfg, port, "skewed")
	if err != nil {
		return err
	}
	defer p.stop(10 * time.Second)
	loaded := false
	if maps, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid()) + "/maps"); err == nil {
		loaded = strings.Contains(string(maps), "libfaketime")
	}
	skew, err := c.clockOf("http://" + addr(port))
	if err != nil {
		return err
	}
	tr.observe("an extra instance (port %d, pid %d) ran under faketime %s in the IM queue's consumer group for 8 s: libfaketime %s in the process, yet its clock (HTTP Date header) was %+.0f s off the harness's. "+
		"Go reads the time through the vDSO, not libc, so an LD_PRELOAD clock cannot skew a Go process (cgo or not); nor can a time namespace "+
		"(unshare --time offsets CLOCK_MONOTONIC and CLOCK_BOOTTIME only, and Go measures monotonic time from its own start). "+
		"The wall clock of one process cannot be skewed without changing the machine's, so this row is no proof of skew tolerance: "+
		"that rests on every lease decision being one script on Redis's clock (package lease, queue: TIME, XPENDING idle)",
		port, p.pid(), clockSkew, map[bool]string{true: "is mapped", false: "is NOT mapped"}[loaded], skew.Seconds())
	return sleep(ctx, 8*time.Second)
}

// clockOf is how far the clock of the server at url is ahead of ours, by
// its Date header (1 s resolution).
func (c *chaosRun) clockOf(url string) (time.Duration, error) {
	before := time.Now()
	resp, err := c.f.client.Get(url + "/health")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	at, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, fmt.Errorf("%s/health: Date header %q: %w", url, resp.Header.Get("Date"), err)
	}
	mid := before.Add(time.Since(before) / 2).Truncate(time.Second)
	return at.Sub(mid), nil
}
