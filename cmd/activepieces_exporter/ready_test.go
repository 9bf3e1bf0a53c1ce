package main

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// Ready means /metrics serves what the first poll of every project found: on a platform of
// 3,000 flows, every scrape from the first 200 of /-/ready on holds every flow.
func TestNoScrapeAfterReadyWithoutEveryFlow(t *testing.T) {
	bin := buildBinary(t)
	sim := simulator.New(simulator.Options{Raw: true})
	const projects, flowsEach = 30, 100
	for i := range projects {
		p := sim.AddProject("project " + string(rune('A'+i%26)) + string(rune('a'+i/26)))
		for j := range flowsEach {
			sim.AddFlow(p, "", "flow "+string(rune('a'+j%26))+string(rune('a'+j/26)))
		}
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	for attempt := range 3 {
		addr := testkit.FreePort(t)
		cmd := exec.Command(bin, "--activepieces.url="+srv.URL+"/api", "--api.rate-limit=10000", "--web.listen-address="+addr, "--log.level=warn")
		cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY="+simulator.DefaultAPIKey)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("not ready in 30 s")
			}
			if _, code, err := scrape("http://" + addr + "/-/ready"); err == nil && code == 200 {
				break
			}
		}
		for i := range 20 {
			text, code, err := scrape("http://" + addr + "/metrics")
			if err != nil || code != 200 {
				t.Fatalf("scrape %d after ready: %d %v", i, code, err)
			}
			if n := strings.Count(text, "\nactivepieces_flow_info{"); n != projects*flowsEach {
				t.Errorf("start %d, scrape %d after ready: %d of %d flows", attempt, i, n, projects*flowsEach)
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
