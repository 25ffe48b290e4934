package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
	"github.com/redis/go-redis/v9"
)

// Components whose CPU time a usage holds, besides "bot-<i>".
const (
	cNginx   = "nginx"
	cRedis   = "redis"
	cMock    = "mockllm"
	cLoadgen = "loadgen" // this process: the load generator runs in it
)

// usage is a snapshot of the machine's counters: CPU seconds per component
// (from /proc, user + system), the machine's busy and stolen time, the
// turns the instances served and the calls mockllm answered.
type usage struct {
	at          time.Time
	cpu         map[string]float64
	busy, steal float64
	turns       float64
	calls       float64
}

// window is what happened between two usages.
type window struct {
	secs  float64
	cpu   map[string]float64 // CPU seconds per component
	busy  float64
	steal float64
	turns float64
	calls float64
}

func (b usage) since(a usage) window {
	w := window{secs: b.at.Sub(a.at).Seconds(), cpu: map[string]float64{},
		busy: b.busy - a.busy, steal: b.steal - a.steal, turns: b.turns - a.turns, calls: b.calls - a.calls}
	for k, v := range b.cpu {
		w.cpu[k] = v - a.cpu[k]
	}
	return w
}

// bots is the instances' CPU seconds in w.
func (w window) bots() float64 {
	var s float64
	for k, v := range w.cpu {
		if strings.HasPrefix(k, "bot-") {
			s += v
		}
	}
	return s
}

// total is the CPU seconds of every component in w.
func (w window) total() float64 {
	var s float64
	for _, v := range w.cpu {
		s += v
	}
	return s
}

// usage reads the counters now.
func (f *fleet) usage(ctx context.Context) (usage, error) {
	u := usage{at: time.Now(), cpu: map[string]float64{}}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return u, err
	}
	group := map[int]string{f.redis.pid(): cRedis, f.mock.pid(): cMock}
	for _, p := range f.nginx {
		group[p.pid()] = cNginx
	}
	for i, p := range f.bots {
		group[p.pid()] = fmt.Sprintf("bot-%d", i)
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return u, err
	}
	self := os.Getpid()
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue // gone meanwhile
		}
		switch name, ok := group[st.PGRP]; {
		case ok:
			u.cpu[name] += st.CPUTime()
		case st.PID == self:
			u.cpu[cLoadgen] += st.CPUTime()
		}
	}
	if s, err := fs.Stat(); err == nil {
		c := s.CPUTotal
		u.busy, u.steal = c.User+c.Nice+c.System+c.IRQ+c.SoftIRQ, c.Steal
	}
	for i := range f.bots {
		m, err := f.metrics(ctx, i)
		if err != nil {
			return u, err
		}
		for _, mm := range m["botfleet_chat_turns_total"].GetMetric() {
			if label(mm, "outcome") != "failed" {
				u.turns += mm.GetCounter().GetValue()
			}
		}
	}
	var st struct {
		Calls float64 `json:"calls"`
	}
	if err := f.getJSON(ctx, f.mockURL()+"/stats", &st); err == nil {
		u.calls = st.Calls
	}
	return u, nil
}

// metrics reads instance i's /metrics.
func (f *fleet) metrics(ctx context.Context, i int) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.botURL(i)+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("instance %d /metrics: %w", i, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// gauge is the first sample's value of a gauge family, 0 when absent.
func gauge(m map[string]*dto.MetricFamily, name string) float64 {
	for _, mm := range m[name].GetMetric() {
		return mm.GetGauge().GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (f *fleet) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// procInfo is one process's resident memory and open descriptors.
type procInfo struct {
	RSS     int // bytes
	FDs     int
	Sockets int
}

func readProc(pid int) (procInfo, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procInfo{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return procInfo{}, err
	}
	info := procInfo{RSS: st.ResidentMemory()}
	targets, err := p.FileDescriptorTargets()
	if err != nil {
		return info, err
	}
	info.FDs = len(targets)
	for _, t := range targets {
		if strings.HasPrefix(t, "socket:") {
			info.Sockets++
		}
	}
	return info, nil
}

// rss is each instance's resident memory in bytes.
func (f *fleet) rss() []int {
	out := make([]int, len(f.bots))
	for i, p := range f.bots {
		if info, err := readProc(p.pid()); err == nil {
			out[i] = info.RSS
		}
	}
	return out
}

// redisMemory is Redis's used_memory in bytes and its key count.
func (f *fleet) redisMemory(ctx context.Context) (used, keys int64, err error) {
	info, err := f.rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscan(info["Memory"]["used_memory"], &used); err != nil {
		return 0, 0, fmt.Errorf("redis used_memory: %w", err)
	}
	keys, err = f.rdb.DBSize(ctx).Result()
	return used, keys, err
}

// keyBytes is the sum of MEMORY USAGE (SAMPLES 0: exact) over every key:
// what the data takes in Redis, without the allocator's and the clients'
// overhead that used_memory moves with.
func (f *fleet) keyBytes(ctx context.Context) (int64, error) {
	var total int64
	iter := f.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		cmds := make([]*redis.IntCmd, len(batch))
		_, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range batch {
				cmds[i] = p.MemoryUsage(ctx, k, 0)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for _, c := range cmds {
			total += c.Val() // a key that expired meanwhile counts 0
		}
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 500 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	return total, flush()
}
