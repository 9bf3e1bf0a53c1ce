package collector

import (
	"bytes"
	"github.com/prometheus/common/expfmt"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// A server whose query parser caps repeated keys at 20 (API.md §1) answers a flowRunIds batch of
// 21–100 ids with a 400: the exporter falls back to 20 ids a request for that server, remembers it,
// and counts every run of 60 in flight that the listing does not return; up stays 1.
func TestRepeatLimitOf20With60RunsInFlight(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{RepeatLimit: 20}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	var running []string
	for i := range 60 { // created apart: the next listing of new runs returns only the newest
		h.clock.Advance(10 * time.Millisecond)
		running = append(running, h.sim.AddRun(simulator.RunSpec{FlowID: []string{fx.flowA, fx.flowB}[i%2], Status: apiclient.StatusRunning}))
	}
	h.mustPoll()
	if v, _ := h.value("activepieces_exporter_tracked_runs", nil); v != 60 {
		t.Fatalf("tracked runs = %v, want 60", v)
	}
	for i, id := range running { // they finish: only a read by id finds them
		h.sim.SetRunStatus(id, []apiclient.RunStatus{apiclient.StatusSucceeded, apiclient.StatusFailed}[i%3/2])
	}
	for range 3 {
		h.mustPoll()
		if v, _ := h.value("activepieces_up", nil); v != 1 {
			t.Fatalf("activepieces_up = %v, want 1", v)
		}
	}
	if n := h.assertTotals(); n != 60 {
		t.Errorf("%d runs counted, want 60", n)
	}
	if v, _ := h.value("activepieces_exporter_tracked_runs", nil); v != 0 {
		t.Errorf("tracked runs = %v after they finished, want 0", v)
	}
	for _, r := range h.sim.Requests() {
		if n := len(r.Query["flowRunIds"]); n > 20 && r.Status != 400 {
			t.Errorf("a request with %d ids was answered %d", n, r.Status)
		}
	}
	if !strings.Contains(h.logs.String(), "at most 20 values") {
		t.Errorf("the fallback was not logged")
	}
	if got := h.exp.m().projects[fx.project].server.RepeatLimit; got != 20 {
		t.Errorf("remembered repeat limit = %d, want 20 (saved with the other server traits)", got)
	}
}

// noSleepClock is the test clock for the API client: waits return at once.
type noSleepClock struct{ *testkit.Clock }

func (c noSleepClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Now().Add(d)
	return ch
}

// signInAs restarts h's exporter with a client that signs in as email (Community Edition).
func (h *harness) signInAs(email, password string, cfg Config) {
	h.t.Helper()
	si, err := apiclient.NewSignIn(apiclient.SignInConfig{Email: email, Password: func() (string, error) { return password, nil },
		MinBackoff: 30 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{BaseURL: h.client.BaseURL(), Auth: si, Clock: noSleepClock{h.clock},
		Timeout: 2 * time.Second, Retries: 1, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Observer: h.api.Observe})
	if err != nil {
		h.t.Fatal(err)
	}
	h.client = client
	if err := h.start(cfg); err != nil {
		h.t.Fatal(err)
	}
}

// A Community server (no API keys) whose tokens last 90 s of simulated time: the exporter signs
// in, renews the token before it runs out and signs in again at once when the server rejects it
// (here: the server's JWT secret changes), and every run is counted exactly across the sign-ins;
// the password is in no log and no metric.
func TestCommunityServerCountsEveryRunAcrossSignIns(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{Edition: "community", TokenLifetime: 90 * time.Second}, Config{},
		func(h *harness) { fx = seedFixture(h); h.sim.AddDemoUser() })
	h.signInAs(simulator.DemoEmail, simulator.DemoPassword, Config{})
	h.mustPoll() // what is there before the first poll is history
	for i := range 16 {
		for j := range 3 {
			st := apiclient.StatusSucceeded
			if (i+j)%4 == 0 {
				st = apiclient.StatusFailed
			}
			h.sim.AddRun(simulator.RunSpec{FlowID: []string{fx.flowA, fx.flowB}[j%2], Status: st})
			h.clock.Advance(time.Millisecond)
		}
		if i == 9 {
			h.sim.RotateJWTSecret() // every token now rejected: INVALID_BEARER_TOKEN
		}
		h.mustPoll()
		if v, _ := h.value("activepieces_up", nil); v != 1 {
			t.Fatalf("poll %d: activepieces_up = %v, want 1", i, v)
		}
	}
	if n := h.assertTotals(); n != 48 {
		t.Errorf("%d runs counted, want 48", n)
	}
	// 16 polls of 30 s: 8 minutes of 90-second tokens, and one rejection.
	if n := h.sim.SignIns(); n < 6 || n > 12 {
		t.Errorf("%d sign-ins in 8 minutes of 90 s tokens", n)
	}
	for name, out := range map[string]string{"logs": h.logs.String(), "metrics": h.text()} {
		if strings.Contains(out, simulator.DemoPassword) {
			t.Errorf("the password is in the %s", name)
		}
	}
}

// A wrong password: up 0, the error names the email and the fix (not the password), and sign-ins
// back off (doubling from the poll interval) instead of hammering the rate-limited auth route.
func TestWrongPasswordIsUpZeroWithFewSignIns(t *testing.T) {
	h := newHarness(t, simulator.Options{Edition: "community"}, Config{}, func(h *harness) { seedFixture(h); h.sim.AddDemoUser() })
	const wrong = "not-the-password-42"
	h.signInAs(simulator.DemoEmail, wrong, Config{})
	var err error
	for range 20 { // 10 minutes
		err = h.poll()
	}
	if err == nil || !strings.Contains(err.Error(), simulator.DemoEmail) || strings.Contains(err.Error(), wrong) {
		t.Errorf("poll error %v: want one naming the email, never the password", err)
	}
	if v, _ := h.value("activepieces_up", nil); v != 0 {
		t.Errorf("activepieces_up = %v, want 0", v)
	}
	// 30 s, 1 m, 2 m, 4 m, … : at most 6 attempts in 10 minutes (20 polls).
	if n := h.sim.CountRequests("/api/v1/authentication/sign-in"); n < 2 || n > 6 {
		t.Errorf("%d sign-in attempts in 10 minutes, want 2 to 6", n)
	}
	if strings.Contains(h.logs.String(), wrong) {
		t.Error("the password is in the logs")
	}
}

// Servers of mid-2025 have no GET /v1/projects (404 Route not found): the exporter lists the
// user's projects at GET /v1/users/projects.
func TestServerWithoutProjectsRouteListsTheUsersProjects(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{Edition: "community", ProjectsRoute: "users"}, Config{},
		func(h *harness) { fx = seedFixture(h); h.sim.AddDemoUser() })
	h.signInAs(simulator.DemoEmail, simulator.DemoPassword, Config{})
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.mustPoll()
	if v, _ := h.value("activepieces_up", nil); v != 1 {
		t.Errorf("activepieces_up = %v, want 1", v)
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 1 {
		t.Errorf("FAILED = %v, want 1", v)
	}
	if h.sim.CountRequests("/api/v1/users/projects") == 0 {
		t.Error("GET /v1/users/projects was never asked")
	}
}

// A member signed in: removed from a project after discovery, the project's next poll is a 403.
// The project is left out (its series go, logged once, up stays 1), not a poll that fails
// forever; the other project is counted throughout; added back, the project returns with the
// next discovery.
func TestProjectTheUserMayNoLongerReadIsLeftOut(t *testing.T) {
	var fx fixture
	var other, otherFlow string
	const email, password = "watcher@example.com", "watcher-password-1"
	h := newHarness(t, simulator.Options{Edition: "community"}, Config{ProjectsInterval: 2 * time.Minute}, func(h *harness) {
		fx = seedFixture(h)
		other = h.sim.AddProject("Finance")
		otherFlow = h.sim.AddFlow(other, "", "Ledger sync")
		h.sim.AddUser(simulator.UserSpec{Email: email, Password: password, Projects: []string{fx.project, other}})
	})
	h.signInAs(email, password, Config{ProjectsInterval: 2 * time.Minute})
	h.mustPoll()
	failed := func(flow string) float64 {
		v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": flow, "status": "FAILED"})
		return v
	}
	h.sim.AddRun(simulator.RunSpec{FlowID: otherFlow, Status: apiclient.StatusFailed})
	h.mustPoll()
	if failed(otherFlow) != 1 {
		t.Fatalf("Finance not watched before the change: FAILED = %v", failed(otherFlow))
	}
	h.sim.SetUserProjects(email, fx.project) // removed from Finance
	for i := range 6 {                       // 3 minutes: a discovery in between
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
		h.mustPoll()
		if v, _ := h.value("activepieces_up", nil); v != 1 {
			t.Fatalf("poll %d after the removal: activepieces_up = %v, want 1", i, v)
		}
	}
	if _, ok := h.value("activepieces_project_info", map[string]string{"project_id": other}); ok {
		t.Error("Finance's series are still served after the user lost it")
	}
	if failed(fx.flowA) != 6 {
		t.Errorf("Sales Ops FAILED = %v, want 6", failed(fx.flowA))
	}
	if n := strings.Count(h.logs.String(), "may not read this project"); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}
	if n, _ := h.value("activepieces_exporter_poll_failures_total", nil); n != 0 {
		t.Errorf("poll failures %v", n)
	}
	h.sim.SetUserProjects(email, fx.project, other) // added back
	for range 5 {
		h.mustPoll()
	}
	if _, ok := h.value("activepieces_project_info", map[string]string{"project_id": other}); !ok {
		t.Error("Finance not watched again after the user was added back (and a discovery ran)")
	}
}

// The status page counts a flow stuck after the server's own run timeout, as /v1/flags says it
// (read again with each project discovery), and /metrics says which server it is: here the
// server starts with the default 10 minutes, then is upgraded with a 2-minute timeout while a
// run has been RUNNING for 4 minutes.
func TestServerFactsFollowTheServer(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{Version: "0.70.0"}, Config{ProjectsInterval: 5 * time.Minute}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning})
	for range 8 { // 4 minutes RUNNING
		h.mustPoll()
	}
	health := func() Health {
		for _, p := range h.exp.Status().Projects {
			for _, f := range p.Flows {
				if f.ID == fx.flowA {
					return f.Health
				}
			}
		}
		t.Fatal("flow A not on the status page")
		return 0
	}
	const before = `activepieces_server_info{edition="ee",version="0.70.0"} 1
activepieces_server_run_timeout_seconds 600
`
	if got := h.samples("activepieces_server_"); got != before {
		t.Errorf("before the upgrade:\n%s\nwant\n%s", got, before)
	}
	if got := health(); got == Stuck {
		t.Fatalf("stuck after 4 minutes with a 10-minute run timeout")
	}
	h.sim.Upgrade("0.71.2", 120)
	h.mustPoll() // 4.5 minutes after the last discovery: not read again yet
	if got := h.samples("activepieces_server_"); got != before {
		t.Errorf("read again before --projects.interval:\n%s", got)
	}
	h.mustPoll()
	const after = `activepieces_server_info{edition="ee",version="0.71.2"} 1
activepieces_server_run_timeout_seconds 120
`
	if got := h.samples("activepieces_server_"); got != after {
		t.Errorf("after the upgrade:\n%s\nwant\n%s", got, after)
	}
	if got := health(); got != Stuck {
		t.Errorf("health %s after 5 minutes RUNNING with a 2-minute run timeout, want stuck", got)
	}
	if got := h.exp.Server(); got != (Server{Edition: "ee", Version: "0.71.2", RunTimeout: 2 * time.Minute}) {
		t.Errorf("Server() = %+v", got)
	}
	if n := strings.Count(h.logs.String(), "Activepieces server"); n != 2 {
		t.Errorf("the server logged %d times, want 2 (start, upgrade):\n%s", n, h.logs.String())
	}
}

// A server without /v1/flags (older, or behind a proxy that only passes the API) is normal:
// edition and version unknown, no run timeout served, the stuck threshold the default, one log
// line however many discoveries.
func TestServerWithoutFlags(t *testing.T) {
	h := newHarness(t, simulator.Options{NoFlags: true}, Config{ProjectsInterval: time.Minute}, func(h *harness) { seedFixture(h) })
	for range 6 {
		h.mustPoll()
	}
	const want = `activepieces_server_info{edition="unknown",version="unknown"} 1
`
	if got := h.samples("activepieces_server_"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if n := strings.Count(h.logs.String(), "does not say its edition"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, h.logs.String())
	}
	if got := h.samples("activepieces_up "); got != "activepieces_up 1\n" {
		t.Errorf("up: %q", got)
	}
}

// samples is the sample lines of the exposition text that start with prefix (no HELP or TYPE).
func (h *harness) samples(prefix string) string {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			h.t.Fatal(err)
		}
	}
	var b strings.Builder
	for line := range strings.Lines(text.String()) {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}
