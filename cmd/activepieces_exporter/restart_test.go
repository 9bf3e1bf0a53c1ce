package main

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// exporterProc is the built binary running against a simulator of the test's.
type exporterProc struct {
	cmd  *exec.Cmd
	addr string
	logs testkit.LockedBuffer
}

func startExporter(t *testing.T, bin string, args ...string) *exporterProc {
	t.Helper()
	return startExporterWithin(t, 20*time.Second, bin, args...)
}

// startExporterWithin starts the exporter and waits up to wait for /-/ready.
func startExporterWithin(t *testing.T, wait time.Duration, bin string, args ...string) *exporterProc {
	t.Helper()
	return startExporterUntil(t, wait, "/-/ready", bin, args...)
}

// startExporterUntil starts the exporter and waits up to wait for path to answer 200.
func startExporterUntil(t *testing.T, wait time.Duration, path, bin string, args ...string) *exporterProc {
	t.Helper()
	p := &exporterProc{addr: testkit.FreePort(t)}
	p.cmd = exec.Command(bin, append(args, "--web.listen-address="+p.addr, "--log.format=json")...)
	p.cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY="+simulator.DefaultAPIKey)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if _, code, err := scrape("http://" + p.addr + path); err == nil && code == 200 {
			return p
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("exporter's %s not answering 200 after %s:\n%s", path, wait, p.logs.String())
	return nil
}

// totals reads activepieces_flow_runs_total from /metrics.
func (p *exporterProc) totals(t *testing.T) map[simulator.Key]int {
	t.Helper()
	text, code, err := scrape("http://" + p.addr + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("scrape: %d %v", code, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	out := map[simulator.Key]int{}
	for _, m := range mfs["activepieces_flow_runs_total"].GetMetric() {
		var k simulator.Key
		for _, lp := range m.GetLabel() {
			switch lp.GetName() {
			case "flow_id":
				k.FlowID = lp.GetValue()
			case "status":
				k.Status = apiclient.RunStatus(lp.GetValue())
			}
		}
		if v := int(m.GetCounter().GetValue()); v > 0 {
			out[k] = v
		}
	}
	return out
}

func equalCounts(a, b map[simulator.Key]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// settle finishes every run still in flight, then waits until the exporter's totals equal the
// simulator's record of finishes (a retried run finishes more than once) of runs created since
// t0, and returns both and the number of finishes. Rows the generator made visible late join
// the record as they appear.
func settle(t *testing.T, sim *simulator.Server, p *exporterProc, t0 time.Time, wait time.Duration) (got, want map[simulator.Key]int, produced int) {
	t.Helper()
	for _, id := range sim.InFlight() {
		sim.SetRunStatus(id, apiclient.StatusSucceeded)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, id := range sim.InFlight() { // late rows that appeared in flight
			sim.SetRunStatus(id, apiclient.StatusSucceeded)
		}
		want = sim.Executions(t0)
		if got = p.totals(t); equalCounts(got, want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, v := range want {
		produced += v
	}
	return got, want, produced
}

// generatedPlatform is a simulator served on loopback with the demo's run generator (40 runs a
// second, an hour of history seeded: not to be counted), and the exporter's arguments to poll
// it at interval with a state file. Start the generator with run; stop it with stop.
type generatedPlatform struct {
	sim  *simulator.Server
	args []string
	stop func()
	done chan struct{}
	gen  *simulator.Generator
}

func newGeneratedPlatform(t *testing.T, seed uint64, interval string) *generatedPlatform {
	t.Helper()
	sim := simulator.New(simulator.Options{Raw: true})
	g := &generatedPlatform{sim: sim, gen: simulator.NewGenerator(sim, 40, seed), done: make(chan struct{})}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	g.args = []string{"--activepieces.url=" + srv.URL + "/api", "--poll.interval=" + interval, "--poll.overlap-interval=1s",
		"--poll.flows-interval=2s", "--api.rate-limit=1000", "--state.file=" + filepath.Join(t.TempDir(), "state.json")}
	return g
}

// run starts the generator; stop ends it and waits.
func (g *generatedPlatform) run() {
	ctx, cancel := context.WithCancel(context.Background())
	g.stop = func() { cancel(); <-g.done }
	go func() { g.gen.Run(ctx, 50*time.Millisecond); close(g.done) }()
}

func TestSIGKILLAndRestartWithStateLosesNoRun(t *testing.T) {
	bin := buildBinary(t)
	g := newGeneratedPlatform(t, 3, "200ms")
	sim, args := g.sim, g.args

	t0 := time.Now()
	first := startExporter(t, bin, args...)
	g.run()

	time.Sleep(2500 * time.Millisecond)
	beforeKill := first.totals(t)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	time.Sleep(1500 * time.Millisecond) // runs keep coming, and finishing, while it is down

	second := startExporter(t, bin, args...)
	afterRestart := second.totals(t)
	for k, v := range beforeKill {
		if afterRestart[k] < v { // what a scrape saw was saved before it was served
			t.Errorf("%v: counter went from %d to %d across the restart: not continued", k, v, afterRestart[k])
		}
	}
	time.Sleep(2 * time.Second)
	g.stop()
	got, want, produced := settle(t, sim, second, t0, 30*time.Second)
	if equalCounts(got, want) {
		t.Logf("produced %d finished runs across a SIGKILL; counted %d exactly", produced, produced)
		return
	}
	t.Fatalf("totals differ from the simulator's record\n got %v\nwant %v\nlogs after restart:\n%s", got, want, second.logs.String())
}
