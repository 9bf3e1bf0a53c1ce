package apiclient_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// FuzzDecodeRunPage feeds arbitrary bytes to the run page decoder and what follows it: decoding
// never panics, and a decoded run never yields a negative or implausible duration or task count.
func FuzzDecodeRunPage(f *testing.F) {
	for _, name := range []string{"flowruns_page_strict.json", "flowruns_page_raw_old.json", "flowrun_get.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"data":[{"id":"a","created":"2026-01-01T00:00:00Z","status":"RUNNING","duration":-1e308,"tasks":1e309}],"next":null}`))
	f.Add([]byte(`{"data":null,"next":"","previous":7}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var page apiclient.Page[apiclient.FlowRun]
		if err := json.Unmarshal(b, &page); err != nil {
			return
		}
		_ = page.NextCursor()
		for i := range page.Data {
			r := &page.Data[i]
			if d, ok := r.DurationSeconds(); ok && (d < 0 || d > apiclient.MaxPlausibleDuration.Seconds()) {
				t.Fatalf("duration %v accepted for %+v", d, r)
			}
			if n, ok := r.TaskCount(); ok && n < 0 {
				t.Fatalf("negative task count %v", n)
			}
			if r.Status != "" && r.Status.IsTerminal() == r.Status.IsInFlight() {
				t.Fatalf("status %q is both or neither terminal and in flight", r.Status)
			}
			_ = r.FailedStepLabel()
			_ = apiclient.ClassifyCursor(page.NextCursor())
		}
	})
}

// FuzzParseRetryAfter: never panics, never a negative wait, never more than a year.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "Fri, 27 Nov 2026 12:00:30 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "-5", "1e3", "99999999999999999999", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := apiclient.ParseRetryAfter(s, now)
		if !ok && d != 0 {
			t.Fatalf("%q: not ok but %v", s, d)
		}
		if d < 0 {
			t.Fatalf("%q: negative wait %v", s, d)
		}
		if d > 365*24*time.Hour {
			t.Fatalf("%q: wait of %v, over a year", s, d)
		}
	})
}
