package deploy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
)

// The example Alertmanager configuration loads, with its templates, in the packaged amtool; and
// every template it defines renders there.
func TestAlertmanagerConfigIsValid(t *testing.T) {
	amtool := testkit.RequireTool(t, "amtool")
	cmd := exec.Command(amtool, "check-config", "alertmanager.yml")
	cmd.Dir = "alertmanager"
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 templates") || strings.Contains(string(out), "FAILED") {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	for _, name := range []string{"activepieces.slack.title", "activepieces.slack.text", "activepieces.email.subject", "activepieces.email.text", "activepieces.email.html"} {
		cmd := exec.Command(amtool, "template", "render", "--template.glob=activepieces.tmpl", `--template.text={{ template "`+name+`" . }}`)
		cmd.Dir = "alertmanager"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("amtool template render %s: %v\n%s", name, err, out)
		}
	}
}

// A run failure's notification shows flow, project, status, the failed step and the link to the
// run, in Slack and in e-mail; user text is escaped for each.
func TestNotificationsLinkToTheFailedRun(t *testing.T) {
	tmpl, err := amtemplate.FromGlobs([]string{filepath.Join("alertmanager", "activepieces.tmpl")})
	if err != nil {
		t.Fatal(err)
	}
	labels := amtemplate.KV{"alertname": "ActivepiecesFlowRunFailed", "severity": "warning", "project_id": "p1", "project_name": "Sales Ops",
		"flow_id": "f1", "flow_name": `Sync <CRM> & "leads"`, "status": "FAILED"}
	annotations := amtemplate.KV{
		"summary":     `Flow "Sync <CRM> & "leads"" in project "Sales Ops" had FAILED runs`,
		"description": "About 1 run(s) failed.",
		"run_url":     "https://ap.example.com/projects/p1/runs/r42",
		"failed_step": "Post to <Slack>",
	}
	data := &amtemplate.Data{Receiver: "activepieces-slack", Status: "firing", CommonLabels: labels,
		Alerts: amtemplate.Alerts{{Status: "firing", Labels: labels, Annotations: annotations}}}

	render := func(html bool, name string) string {
		t.Helper()
		text := `{{ template "` + name + `" . }}`
		var out string
		var err error
		if html {
			out, err = tmpl.ExecuteHTMLString(text, data)
		} else {
			out, err = tmpl.ExecuteTextString(text, data)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	for _, c := range []struct {
		name string
		html bool
		want []string
	}{
		{"activepieces.slack.title", false, []string{"[FIRING:1] ActivepiecesFlowRunFailed · Sync &lt;CRM&gt; &amp; \"leads\" · Sales Ops"}},
		{"activepieces.slack.text", false, []string{"• Flow: Sync &lt;CRM&gt; &amp; \"leads\" (`f1`)", "• Project: Sales Ops", "• Status: FAILED",
			"• Failed step: Post to &lt;Slack&gt;", "• <https://ap.example.com/projects/p1/runs/r42|Open the failed run>"}},
		{"activepieces.email.subject", false, []string{`[FIRING:1] ActivepiecesFlowRunFailed · Sync <CRM> & "leads" · Sales Ops`}},
		{"activepieces.email.text", false, []string{"Failed step: Post to <Slack>", "Run:         https://ap.example.com/projects/p1/runs/r42", "Status:      FAILED"}},
		{"activepieces.email.html", true, []string{"<td>Sync &lt;CRM&gt; &amp; &#34;leads&#34;</td>", "<td>Post to &lt;Slack&gt;</td>",
			`<a href="https://ap.example.com/projects/p1/runs/r42">Open the failed run</a>`}},
	} {
		got := render(c.html, c.name)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", c.name, w, got)
			}
		}
		if strings.Contains(got, "<CRM>") && c.name != "activepieces.email.subject" && c.name != "activepieces.email.text" {
			t.Errorf("%s carries a flow name unescaped:\n%s", c.name, got)
		}
	}
}
