// Package deploy_test checks what operators apply: the Prometheus rules (promtool), the
// prometheus-operator copy of them, the Kubernetes manifests, and the rules and the dashboard
// against a real Prometheus scraping the exporter's demo.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "regenerate kubernetes/common/prometheusrule.yaml")

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRulesPassPromtool(t *testing.T) {
	promtool := testkit.RequireTool(t, "promtool")
	run(t, promtool, "check", "rules", "prometheus/alerts.yml", "prometheus/recording.yml")
	out := run(t, promtool, "test", "rules", "prometheus/alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
}

func TestEveryAlertHasAUnitTest(t *testing.T) {
	alerts := ruleNames(t, "prometheus/alerts.yml", "alert")
	if len(alerts) < 8 {
		t.Fatalf("only %d alerts: %v", len(alerts), alerts)
	}
	tests, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !strings.Contains(string(tests), "alertname: "+a+"\n") {
			t.Errorf("alert %s has no promtool test", a)
		}
	}
}

// ActivepiecesRunStuck and the status page agree on when a run is stuck: the server's run timeout
// (activepieces_server_run_timeout_seconds) when it says it, else the same default.
func TestRunStuckAlertUsesTheStatusPagesThreshold(t *testing.T) {
	want := fmt.Sprintf("> %g)", collector.StuckAfter.Seconds())
	for _, g := range readRules(t, "prometheus/alerts.yml").Groups {
		for _, r := range g.Rules {
			if r.Alert != "ActivepiecesRunStuck" {
				continue
			}
			if !strings.Contains(r.Expr, "group_left () activepieces_server_run_timeout_seconds") {
				t.Errorf("ActivepiecesRunStuck does not compare with the server's run timeout:\n%s", r.Expr)
			}
			if !strings.Contains(r.Expr, want) {
				t.Errorf("ActivepiecesRunStuck's default is not collector.StuckAfter (%s): want %q in\n%s", collector.StuckAfter, want, r.Expr)
			}
			return
		}
	}
	t.Fatal("no ActivepiecesRunStuck alert")
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rf
}

func ruleNames(t *testing.T, path, kind string) []string {
	var out []string
	for _, g := range readRules(t, path).Groups {
		for _, r := range g.Rules {
			if kind == "alert" && r.Alert != "" {
				out = append(out, r.Alert)
			}
			if kind == "record" && r.Record != "" {
				out = append(out, r.Record)
			}
		}
	}
	return out
}

// prometheusRule renders the prometheus-operator resource from the two rules files, so the two
// never drift: the groups are copied verbatim, indented under spec.
func prometheusRule(t *testing.T) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated from deploy/prometheus/alerts.yml and recording.yml by\n" +
		"# `go test ./deploy -run PrometheusRule -update`. Do not edit: edit those files.\n" +
		"apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: activepieces-exporter\n" +
		"  labels:\n    app.kubernetes.io/name: activepieces-exporter\nspec:\n  groups:\n")
	for _, f := range []string{"prometheus/alerts.yml", "prometheus/recording.yml"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, groups, ok := strings.Cut(string(src), "\ngroups:\n")
		if !ok {
			t.Fatalf("%s: no top-level groups:", f)
		}
		for _, line := range strings.SplitAfter(groups, "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString("  ")
			}
			b.WriteString(line)
		}
	}
	return b.Bytes()
}

func TestPrometheusRuleMatchesTheRulesFiles(t *testing.T) {
	want := prometheusRule(t)
	path := "kubernetes/common/prometheusrule.yaml"
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s drifted from prometheus/alerts.yml and recording.yml; run go test ./deploy -run PrometheusRule -update", path)
	}
	var pr struct {
		Kind string   `yaml:"kind"`
		Spec ruleFile `yaml:"spec"`
	}
	if err := yaml.Unmarshal(got, &pr); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range pr.Spec.Groups {
		n += len(g.Rules)
	}
	want2 := len(ruleNames(t, "prometheus/alerts.yml", "alert")) + len(ruleNames(t, "prometheus/recording.yml", "record"))
	if pr.Kind != "PrometheusRule" || n != want2 {
		t.Errorf("PrometheusRule has %d rules, the files %d", n, want2)
	}
}

// dashboardExprs returns every PromQL expression of the dashboard (panels and variables), with
// Grafana's variables replaced as Grafana would for "All".
func dashboardExprs(t *testing.T) []string {
	b, err := os.ReadFile("grafana/activepieces-flows.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.*), *[a-z_]+\)$`)
	for _, v := range d.Templating.List {
		if v.Definition == "" {
			continue
		}
		exprs = append(exprs, labelValues.ReplaceAllString(v.Definition, "$1"))
	}
	r := strings.NewReplacer(`$project`, `.*`, `$flow`, `.*`, `$__rate_interval`, `20s`, `$__range`, `2m`, `$__interval`, `5s`)
	for i := range exprs {
		exprs[i] = r.Replace(exprs[i])
		if strings.Contains(exprs[i], "$") {
			t.Errorf("unreplaced variable in %q", exprs[i])
		}
	}
	if len(exprs) < 15 {
		t.Fatalf("only %d expressions in the dashboard", len(exprs))
	}
	return exprs
}

// start runs a command until the test ends, with its output kept for failure reports.
func start(t *testing.T, logs *testkit.LockedBuffer, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
}

type promResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []json.RawMessage `json:"result"`
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
		} `json:"alerts"`
	} `json:"data"`
}

func promGet(base, path string, q url.Values) (promResult, error) {
	var r promResult
	resp, err := http.Get(base + path + "?" + q.Encode())
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w: %s", path, err, b)
	}
	if r.Status != "success" {
		return r, fmt.Errorf("%s %v: %s", path, q, r.Error)
	}
	return r, nil
}

// Against the demo of each edition: Enterprise (an API key) and Community (the exporter signs in
// as the demo user).
func TestRealPrometheusAlertsAndDashboardAgainstTheDemo(t *testing.T) {
	for _, edition := range []string{"enterprise", "community"} {
		t.Run(edition, func(t *testing.T) { realPrometheusAgainstTheDemo(t, edition) })
	}
}

func realPrometheusAgainstTheDemo(t *testing.T, edition string) {
	prometheus := testkit.RequireTool(t, "prometheus")
	dir := t.TempDir()
	bin := filepath.Join(dir, "activepieces_exporter")
	run(t, "go", "build", "-o", bin, "../cmd/activepieces_exporter")

	exporterAddr, promAddr := testkit.FreePort(t), testkit.FreePort(t)
	var exporterLogs, promLogs testkit.LockedBuffer
	start(t, &exporterLogs, bin, "--demo", "--demo.edition="+edition, "--demo.rate=20", "--poll.interval=1s", "--poll.flows-interval=3s", "--web.listen-address="+exporterAddr, "--log.level=warn")

	fastRules(t, dir)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml, recording.yml]
scrape_configs:
  - job_name: activepieces
    static_configs:
      - targets: [%q]
`, exporterAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, &promLogs, prometheus, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn",
		"--enable-feature=exemplar-storage")
	base := "http://" + promAddr

	exprs := dashboardExprs(t)
	exprs = append(exprs, ruleNames(t, "prometheus/recording.yml", "record")...)
	if edition == "community" { // the server says what it is, and the exporter signed in
		exprs = append(exprs, `activepieces_server_info{edition="ce"} == 1`, `activepieces_exporter_sign_ins_total{result="success"} > 0`)
	}
	for _, g := range readRules(t, "prometheus/recording.yml").Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	empty := map[string]bool{}
	firing, retried, linked := false, false, false
	var exemplified string // a failed run an exemplar names, found in the demo's UI
	var uiBase string      // the demo's UI, from the alert's run_url
	var lastErr error
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		alerts, err := promGet(base, "/api/v1/alerts", nil)
		if err != nil {
			lastErr = err
			continue
		}
		var ui string
		firing, ui = flakyRunFailed(t, alerts)
		if ui != "" {
			linked, uiBase = true, ui
		}
		emptyQueries(t, base, exprs, empty)
		// The demo retries the flaky flow's failures: Prometheus sees at least one retry.
		retried = false
		if res, err := promGet(base, "/api/v1/query", url.Values{"query": {`sum(activepieces_flow_run_retries_total{flow_name="Flaky webhook relay"}) > 0`}}); err == nil {
			retried = len(res.Data.Result) > 0
		}
		if exemplified == "" && linked {
			exemplified = exemplarRun(t, base, uiBase)
		}
		if firing && retried && linked && exemplified != "" && len(empty) == 0 {
			t.Logf("exemplar of a FAILED run of the flaky flow: %s", exemplified)
			return
		}
	}
	var missing []string
	for e := range empty {
		missing = append(missing, e)
	}
	sort.Strings(missing)
	t.Fatalf("after 90s: FAILED alert firing for the flaky flow = %v, a retry seen = %v, its run linked = %v, an exemplar naming a failed run = %q; queries without data:\n  %s\nlast error: %v\nexporter log:\n%s\nprometheus log:\n%s",
		firing, retried, linked, exemplified, strings.Join(missing, "\n  "), lastErr, exporterLogs.String(), promLogs.String())
}

// The dashboard's panels fit the 24-column grid without overlapping, and every query of a panel
// has its own refId and the dashboard's data source variable.
func TestDashboardLayout(t *testing.T) {
	b, err := os.ReadFile("grafana/activepieces-flows.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string                   `json:"title"`
			Type    string                   `json:"type"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				RefID      string `json:"refId"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: re-imports would duplicate it")
	}
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, taken := cells[[2]int{x, y}]; taken {
					t.Fatalf("panels %q and %q overlap at (%d,%d)", other, p.Title, x, y)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query data source %q, want the ${datasource} variable", p.Title, tg.Datasource.UID)
			}
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
}

// exemplarRun asks Prometheus (exemplar storage on) for the exemplars of the flaky flow's FAILED
// counter and duration buckets, and returns the run the latest FAILED one names once that run's
// page in the UI (the demo's stand-in) says it failed; "" until then.
func exemplarRun(t *testing.T, base, uiBase string) string {
	t.Helper()
	var res struct {
		Data []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels map[string]string `json:"labels"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	get := func(query string) bool {
		now := time.Now()
		q := url.Values{"query": {query}, "start": {fmt.Sprint(now.Add(-5 * time.Minute).Unix())}, "end": {fmt.Sprint(now.Unix())}}
		resp, err := http.Get(base + "/api/v1/query_exemplars?" + q.Encode())
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		res.Data = nil
		return json.NewDecoder(resp.Body).Decode(&res) == nil && len(res.Data) > 0 && len(res.Data[0].Exemplars) > 0
	}
	if !get(`activepieces_flow_run_duration_seconds_bucket{flow_name="Flaky webhook relay"}`) {
		return ""
	}
	if !get(`activepieces_flow_runs_total{flow_name="Flaky webhook relay", status="FAILED"}`) {
		return ""
	}
	ex := res.Data[0].Exemplars
	runID, project := ex[len(ex)-1].Labels["run_id"], res.Data[0].SeriesLabels["project_id"]
	resp, err := http.Get(uiBase + "/projects/" + project + "/runs/" + runID)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(page), runID) || !strings.Contains(string(page), "Failed step") {
		t.Errorf("the exemplar's run %s: the UI page answers %d\n%s", runID, resp.StatusCode, page)
		return ""
	}
	return runID
}

// flakyRunFailed looks at ActivepiecesFlowRunFailed: whether it fires for the demo's flaky flow,
// and the demo's UI when its notification links to the failed run there and names its step. It
// must never fire for the healthy flow.
func flakyRunFailed(t *testing.T, alerts promResult) (firing bool, uiBase string) {
	t.Helper()
	for _, a := range alerts.Data.Alerts {
		if a.Labels["alertname"] != "ActivepiecesFlowRunFailed" {
			continue
		}
		switch a.Labels["flow_name"] {
		case "Flaky webhook relay":
			firing = firing || a.State == "firing"
			u := a.Annotations["run_url"]
			if strings.HasPrefix(u, "http://127.0.0.1:") && strings.Contains(u, "/runs/") && a.Annotations["failed_step"] != "" &&
				strings.Contains(a.Annotations["description"], u) {
				uiBase = u[:strings.Index(u, "/projects/")]
			}
		case "Nightly invoice export":
			t.Fatalf("ActivepiecesFlowRunFailed fired for the healthy flow: %v", a.Labels)
		}
	}
	return firing, uiBase
}

// emptyQueries runs every query and leaves in empty those without data.
func emptyQueries(t *testing.T, base string, exprs []string, empty map[string]bool) {
	t.Helper()
	clear(empty)
	for _, e := range exprs {
		res, err := promGet(base, "/api/v1/query", url.Values{"query": {e}})
		if err != nil {
			t.Fatalf("query does not run: %v", err) // a parse error will not heal by waiting
		}
		if len(res.Data.Result) == 0 {
			empty[e] = true
		}
	}
}

// fastRules writes the shipped rules into dir, evaluated every second instead of every minute.
func fastRules(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"alerts.yml", "recording.yml"} {
		src, err := os.ReadFile("prometheus/" + f)
		if err != nil {
			t.Fatal(err)
		}
		fast := strings.ReplaceAll(string(src), "interval: 1m", "interval: 1s")
		if err := os.WriteFile(filepath.Join(dir, f), []byte(fast), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
