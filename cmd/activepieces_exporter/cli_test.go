package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
)

func parse(t *testing.T, env map[string]string, args ...string) (*CLI, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cli CLI
	p, err := kong.New(&cli, kong.Name("activepieces_exporter"), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(args)
	return &cli, err
}

func TestDefaultsAndEnvironment(t *testing.T) {
	cli, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cli.URL != "https://cloud.activepieces.com/api" || cli.collectorConfig().PollInterval != 0 || cli.PollMaxPages != 50 ||
		cli.PollOverlap != time.Minute || cli.PollFlowsInterval != 5*time.Minute || cli.PollProjectsInterval != 10*time.Minute ||
		cli.PollConcurrency != 4 || cli.APITimeout != 10*time.Second || cli.APIRateLimit != 10 || cli.APIRetries != 3 ||
		cli.PollPageSize != 100 || cli.MaxFlows != 10000 || cli.PollLookback != time.Hour || cli.TelemetryPath != "/metrics" {
		t.Errorf("defaults: %+v", cli)
	}
	if d := collector.DefaultConfig(); d.PollInterval != 30*time.Second || d.Overlap != time.Minute || d.MaxPages != 50 {
		t.Errorf("collector defaults: %+v", d)
	}
	cli, err = parse(t, map[string]string{
		"ACTIVEPIECES_EXPORTER_POLL_INTERVAL": "5s", "ACTIVEPIECES_PROJECTS": "aaaaaaaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbbbbbbb",
		"ACTIVEPIECES_URL": "http://127.0.0.1:1/api",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cli.PollInterval != 5*time.Second || len(cli.Projects) != 2 || cli.URL != "http://127.0.0.1:1/api" {
		t.Errorf("environment not applied: %+v", cli)
	}
}

func TestTheKeyIsNeverAFlag(t *testing.T) {
	for _, flag := range []string{"--activepieces.api-key=sk-x", "--api-key=sk-x", "--activepieces.key=sk-x"} {
		if _, err := parse(t, nil, flag); err == nil {
			t.Errorf("%s was accepted", flag)
		}
	}
}

func TestKeySource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	for _, tc := range []struct {
		name, file, env, want, err string
	}{
		{name: "env", env: " sk-env\n", want: "sk-env"},
		{name: "none", err: "no API key: set ACTIVEPIECES_API_KEY or --activepieces.api-key-file (or use --demo)"},
		{name: "file", file: "sk-file\n", env: "sk-env", want: "sk-file"},
		{name: "empty file", file: "  \n", err: "API key file " + path + " is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ""
			if tc.file != "" {
				p = path
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			k, err := newKeySource(p, func(string) string { return tc.env })
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || k.Get() != tc.want {
				t.Fatalf("key = %q, %v", k.Get(), err)
			}
		})
	}
	_, err := newKeySource(filepath.Join(dir, "missing"), func(string) string { return "" })
	if err == nil || !strings.HasSuffix(err.Error(), "no such file or directory") {
		t.Errorf("missing file: %v", err)
	}
	// Rotation: the file changes, reload picks it up.
	if err := os.WriteFile(path, []byte("sk-one"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := newKeySource(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("sk-two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := k.reload(); err != nil || !changed || k.Get() != "sk-two" {
		t.Errorf("reload: %v %v %q", changed, err, k.Get())
	}
}

// The README's configuration table documents every flag with its environment variable.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cli CLI
	p, err := kong.New(&cli)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Model.Flags {
		if f.Name == "help" {
			continue
		}
		row := "| `--" + f.Name + "` | `" + f.Envs[0] + "`"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README lacks the row %q", row)
		}
	}
}
