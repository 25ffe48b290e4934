package healthcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// MaxPause caps how long one Pause lasts: a script that dies while it works
// on an instance leaves the instance watched again after at most this long.
const MaxPause = 30 * time.Minute

// Pause stops the restarts of the targets whose liveness port is port (or
// whose name is name) until d has passed on the checker's clock or Resume
// is called; probing and /status go on. It waits for a restart under way to
// finish, so once it returns the checker does not touch the instance, its
// pid file or its process. It returns the names of the paused targets.
func (c *Checker) Pause(name string, port int, d time.Duration) ([]string, error) {
	if d <= 0 || d > MaxPause {
		return nil, fmt.Errorf("pause: duration must be in (0, %s], got %s", MaxPause, d)
	}
	until := c.now().Add(d)
	return c.eachTarget(name, port, func(t *target) {
		t.mu.Lock()
		t.pausedUntil = until
		t.st.PausedUntil = until.UTC()
		t.mu.Unlock()
		// A restart under way holds acting: wait for it to end.
		t.acting.Lock()
		t.acting.Unlock()
		t.logger.Info("restarts paused", "until", until.UTC())
	})
}

// Resume ends a Pause of the matching targets.
func (c *Checker) Resume(name string, port int) ([]string, error) {
	return c.eachTarget(name, port, func(t *target) {
		t.mu.Lock()
		t.pausedUntil, t.st.PausedUntil = time.Time{}, time.Time{}
		t.mu.Unlock()
		t.logger.Info("restarts resumed")
	})
}

func (c *Checker) eachTarget(name string, port int, fn func(*target)) ([]string, error) {
	c.mu.Lock()
	targets := append([]*target(nil), c.targets...)
	c.mu.Unlock()
	var names []string
	for _, t := range targets {
		if (name != "" && t.cfg.Name == name) || (port > 0 && t.cfg.Port == port) {
			fn(t)
			names = append(names, t.cfg.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no target named %q or on port %d", name, port)
	}
	return names, nil
}

// paused reports whether restarts are paused at now.
func (t *target) paused(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return now.Before(t.pausedUntil)
}

// servePause serves POST /pause?port=N|target=NAME&for=DURATION and POST
// /resume?port=N|target=NAME.
func (c *Checker) servePause(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, err error) {
		writeJSON(code, map[string]any{"error": map[string]string{"code": "bad_request", "message": err.Error()}})
	}
	q := r.URL.Query()
	port := 0
	if p := q.Get("port"); p != "" {
		var err error
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			fail(http.StatusBadRequest, fmt.Errorf("bad port %q", p))
			return
		}
	}
	name := q.Get("target")
	if name == "" && port == 0 {
		fail(http.StatusBadRequest, errors.New("name a target: ?port=N or ?target=NAME"))
		return
	}
	var names []string
	var err error
	if r.URL.Path == "/resume" {
		names, err = c.Resume(name, port)
	} else {
		d, perr := time.ParseDuration(q.Get("for"))
		if perr != nil {
			fail(http.StatusBadRequest, fmt.Errorf("for: want a duration such as 2m, got %q", q.Get("for")))
			return
		}
		names, err = c.Pause(name, port, d)
	}
	if err != nil {
		fail(http.StatusNotFound, err)
		return
	}
	writeJSON(http.StatusOK, map[string]any{"targets": names})
}
