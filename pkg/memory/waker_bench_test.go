package memory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

// BenchmarkWakeUpFanOut measures what a wake-up costs a 3-master Cluster:
// a classic PUBLISH on one fleet-wide channel (what the waker did before)
// against an SPUBLISH on the conversation's own channel (what it does).
// Four instances listen; each wake-up is for a turn waiting on one of
// them. Reported per wake-up: Redis CPU summed over the masters
// (redis-µs/op) and messages sent over the cluster bus (bus-msgs/op).
func BenchmarkWakeUpFanOut(b *testing.B) {
	c := testenv.StartCluster(b, testenv.ClusterOptions{})
	rdb := c.Client()
	ctx := context.Background()
	// Four listening instances, as the fleet's Stores would be.
	const instances = 4
	for _, mode := range []string{"publish", "spublish"} {
		b.Run(mode, func(b *testing.B) {
			channels := make([]string, 64)
			for i := range channels {
				channels[i] = fmt.Sprintf("bf:{c2c:%d}:wake", i)
			}
			for inst := range instances {
				// Classic: every instance listens to the fleet's channel, so
				// every wake-up reaches all of them. Sharded: an instance
				// listens to the conversations its turns wait on, one
				// subscription each as the waker makes them — here each
				// conversation has a waiter on one instance.
				subs := []*redis.PubSub{}
				if mode == "publish" {
					subs = append(subs, rdb.Subscribe(ctx, "bf:wake"))
				} else {
					for i, ch := range channels {
						if i%instances == inst {
							subs = append(subs, rdb.SSubscribe(ctx, ch))
						}
					}
				}
				for _, ps := range subs {
					defer ps.Close()
					if _, err := ps.Receive(ctx); err != nil {
						b.Fatal(err)
					}
					go func() {
						for range ps.Channel() {
						}
					}()
				}
			}
			cpu0, bus0 := clusterUsage(b, c)
			for i := 0; b.Loop(); i++ {
				var err error
				if mode == "publish" {
					err = rdb.Publish(ctx, "bf:wake", "ticket").Err()
				} else {
					err = rdb.SPublish(ctx, channels[i%len(channels)], "ticket").Err()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu1, bus1 := clusterUsage(b, c)
			b.ReportMetric((cpu1-cpu0)*1e6/float64(b.N), "redis-µs/op")
			b.ReportMetric(float64(bus1-bus0)/float64(b.N), "bus-msgs/op")
		})
	}
}

// clusterUsage sums the masters' CPU seconds and cluster-bus messages sent.
func clusterUsage(b *testing.B, c *testenv.Cluster) (cpu float64, bus int64) {
	for _, m := range c.Masters {
		cl := m.Client()
		info := cl.Info(context.Background(), "cpu").Val()
		for _, line := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, _ := strconv.ParseFloat(v, 64)
				cpu += f
			}
		}
		ci := cl.ClusterInfo(context.Background()).Val()
		for _, line := range strings.Split(ci, "\r\n") {
			if v, ok := strings.CutPrefix(line, "cluster_stats_messages_sent:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				bus += n
			}
		}
	}
	return cpu, bus
}
