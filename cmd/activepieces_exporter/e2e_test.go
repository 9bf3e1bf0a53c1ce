package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// contractFamilies is every metric family the exporter promises (README): the collector's own
// (those served in every configuration) and the registry's.
var contractFamilies = func() []string {
	names := []string{"activepieces_exporter_api_requests_total", "activepieces_exporter_api_request_duration_seconds",
		"activepieces_exporter_build_info", "go_goroutines", "process_cpu_seconds_total"}
	for _, f := range collector.Families() {
		if f.Only == "" || strings.HasPrefix(f.Only, "without ") { // served by the demo's defaults
			names = append(names, f.Name)
		}
	}
	return names
}()

// raceBinaryEnv, when set, builds the exporter the tests run with -race (make bench runs the load
// tests so); a race it reports fails the test that ran it (see checkNoRace).
const raceBinaryEnv = "ACTIVEPIECES_EXPORTER_TEST_RACE_BINARY"

// checkNoRace fails t when the exporter's output reports a data race.
func checkNoRace(t *testing.T, logs string) {
	t.Helper()
	if i := strings.Index(logs, "WARNING: DATA RACE"); i >= 0 {
		t.Errorf("the exporter reported a data race:\n%s", logs[i:min(len(logs), i+4000)])
	}
}

// builtBinary is the exporter built once for the package's tests (TestMain).
var builtBinary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "activepieces_exporter-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	builtBinary = filepath.Join(dir, "activepieces_exporter")
	args := []string{"build", "-o", builtBinary}
	if os.Getenv(raceBinaryEnv) != "" { // make bench: the load tests run the exporter under the race detector
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// buildBinary returns the exporter binary built for this package's tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	return builtBinary
}

func scrape(url string) (string, int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

func hasFamily(text, name string) bool {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") ||
			strings.HasPrefix(line, name+"_bucket{") || strings.HasPrefix(line, name+"_count") {
			return true
		}
	}
	return false
}

func TestDemoBinaryServesEveryContractFamily(t *testing.T) {
	bin := buildBinary(t)
	addr := testkit.FreePort(t)
	var logs testkit.LockedBuffer
	cmd := exec.Command(bin, "--demo", "--demo.rate=20", "--poll.interval=1s", "--web.listen-address="+addr, "--log.format=json")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY=") // demo needs no key
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("exporter did not shut down cleanly on SIGTERM: %v\n%s", err, logs.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("exporter ignored SIGTERM")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var missing []string
	for ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		text, code, err := scrape("http://" + addr + "/metrics")
		if err != nil || code != 200 {
			continue
		}
		missing = missing[:0]
		for _, f := range contractFamilies {
			if !hasFamily(text, f) {
				missing = append(missing, f)
			}
		}
		if len(missing) == 0 {
			if !strings.Contains(text, "activepieces_up 1") {
				t.Errorf("activepieces_up is not 1 against the demo")
			}
			checkWithPromtool(t, text)
			for _, path := range []string{"/-/healthy", "/-/ready", "/"} {
				if _, code, err := scrape("http://" + addr + path); err != nil || code != 200 {
					t.Errorf("GET %s: %d %v", path, code, err)
				}
			}
			return
		}
	}
	t.Fatalf("after 45s the demo still lacks %v\nlogs:\n%s", missing, logs.String())
}

func TestCheckCommandAgainstTheDemo(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "check", "--demo").CombinedOutput()
	if err != nil {
		t.Fatalf("check --demo: %v\n%s", err, out)
	}
	for _, want := range []string{"Server: Enterprise edition, version 0.85.4", "Credential: platform API key", "Projects: 2", "Sales Ops", "Flaky webhook relay", "Cold start (until ready):", "Look-back history, read in the background:", "effective poll period 5s", "Series served:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(string(out), "Server: ") && !strings.Contains(string(out), "\nServer: ") {
		t.Errorf("check does not print the server first:\n%s", out)
	}
}

// check against a Community server: the edition and version first, then the signed-in user.
func TestCheckCommandAgainstTheCommunityDemo(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "check", "--demo", "--demo.edition=community")
	cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check --demo --demo.edition=community: %v\n%s", err, out)
	}
	for _, want := range []string{"Server: Community edition, version 0.85.4", "Signed in as demo@example.com (platform role ADMIN)", "Projects: 2", "Flaky webhook relay"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "demo-password-1") {
		t.Errorf("check prints the password:\n%s", out)
	}
}

func TestCheckCommandFailsClearlyWithoutLeakingTheKey(t *testing.T) {
	bin := buildBinary(t)
	const key = "sk-secretSecretSecret0000000000000000000000000000000000000000000"
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		fmt.Fprint(w, `{"code":"AUTHENTICATION","params":{"message":"invalid api key"}}`)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	cmd := exec.Command(bin, "check", "--activepieces.url=http://"+ln.Addr().String()+"/api", "--log.level=debug")
	cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY="+key)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("check succeeded against a server refusing the key:\n%s", out)
	}
	if !strings.Contains(string(out), "AUTHENTICATION") {
		t.Errorf("check output does not say why:\n%s", out)
	}
	if strings.Contains(string(out), key) {
		t.Errorf("the key leaked into check output:\n%s", out)
	}
}

// checkWithPromtool runs promtool check metrics on a scrape (required under CI).
func checkWithPromtool(t *testing.T, text string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is required under CI (make tools installs it)")
		}
		t.Log("promtool not installed: served text not checked")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics on /metrics: %v\n%s", err, out)
	}
}

// check against an older server without GET /v1/flags: edition and version are unknown, which
// is normal, and the check passes.
func TestCheckCommandAgainstAServerWithoutFlags(t *testing.T) {
	bin := buildBinary(t)
	sim := simulator.New(simulator.Options{NoFlags: true})
	sim.AddFlow(sim.AddProject("Ops"), "", "relay")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	cmd := exec.Command(bin, "check", "--activepieces.url="+srv.URL+"/api")
	cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY="+simulator.DefaultAPIKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	for _, want := range []string{"Server: unknown edition, version unknown", "Credential: platform API key", "Projects: 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}
