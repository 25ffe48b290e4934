package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
)

// budgetKills bounds the kills of exhaustBudget: the budget (5 restarts)
// plus one, and room for restarts the crash-loop row already spent.
const budgetKills = 8

// exhaustBudget kills the backup instance each time the health checker has
// it back, until the checker marks it failed (past its restart budget);
// then it waits for the checker's alert at the fake robot, and puts the
// fleet back as an operator would: the instance started with the script,
// the checker restarted (a fresh budget; it adopts every instance).
func (c *chaosRun) exhaustBudget(ctx context.Context, tr *traffic) error {
	b := len(c.f.botPorts) - 1
	port := c.f.botPorts[b]
	alertsBefore, _ := c.robot.received()
	var failedAt, lastKill time.Time
	var st healthcheck.TargetStatus
	kills := 0
	for kills < budgetKills && failedAt.IsZero() {
		pid, err := c.f.killBot(b)
		if err != nil {
			return err
		}
		kills++
		lastKill = time.Now()
		// Back (a new pid, ready), or marked failed.
		deadline := time.Now().Add(40 * time.Second)
		for {
			if st, err = c.target(port); err == nil && st.State == healthcheck.StateFailed {
				failedAt = time.Now()
				break
			}
			if p := c.f.botPID(b); p != 0 && p != pid && httpOK(c.f.client, c.f.botURL(b)+"/ready") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("instance %d neither back nor failed 40 s after kill %d (state %s)", b, kills, st.State)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	if failedAt.IsZero() {
		return fmt.Errorf("the checker still restarts instance %d after %d kills (budget %d in %s)", b, kills, st.Restarts.Budget, st.Restarts.Window)
	}
	var alert *robotMessage
	for end := time.Now().Add(10 * time.Second); alert == nil && time.Now().Before(end); {
		if got, _ := c.robot.received(); len(got) > len(alertsBefore) {
			alert = &got[len(alertsBefore)]
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	// Failed means no more restarts: the instance stays down.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	down := c.f.botPID(b) == 0
	_, refused := c.robot.received()
	if alert == nil {
		return fmt.Errorf("the checker marked %s failed but no alert reached the robot within 10 s (%d refused)", st.Name, refused)
	}
	tr.observe("after %d kills the checker marked %s failed (%d restarts in its %s window, budget %d); 2 s later it was %s; "+
		"the DingTalk robot received its signed alert %.1f s after the last kill (%d refused): %q",
		kills, st.Name, st.Restarts.InWindow, st.Restarts.Window, st.Restarts.Budget,
		map[bool]string{true: "still down (not restarted)", false: "running again: restarted past its budget"}[down],
		alert.At.Sub(lastKill).Seconds(), refused, alert.Text)
	if !down {
		return errors.New("the checker restarted an instance it had marked failed")
	}
	// The operator's fix: start it again and restart the checker.
	if err := c.f.script(ctx, "start_multiple_instances.sh", port); err != nil {
		return err
	}
	c.f.checker.stop(5 * time.Second)
	return c.f.startChecker(ctx)
}

// target is the health checker's status of the target on port.
func (c *chaosRun) target(port int) (healthcheck.TargetStatus, error) {
	st, err := c.f.checkerStatus()
	if err != nil {
		return healthcheck.TargetStatus{}, err
	}
	for _, t := range st.Targets {
		if t.Port == port {
			return t, nil
		}
	}
	return healthcheck.TargetStatus{}, fmt.Errorf("the checker has no target on port %d", port)
}
