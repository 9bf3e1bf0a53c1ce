package collector

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// Validate refuses what the command line cannot say too (TestValidateRefusesBadConfigurations in
// the command covers the flags): every problem named, a negative value never taken for the
// default or for off.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero value", Config{}, ""},
		{"defaults", DefaultConfig(), ""},
		{"watch off, window ignored", Config{RetryWatchOff: true, RetryWindow: time.Hour, LateCheckOff: true}, ""},
		{"negative retry window", Config{RetryWindow: -1}, "retry window must not be negative, got -1ns"},
		{"negative retry window, watch off", Config{RetryWindow: -time.Hour, RetryWatchOff: true}, "retry window must not be negative, got -1h0m0s"},
		{"negative late window", Config{LateWindow: -time.Minute}, "late window must not be negative, got -1m0s"},
		{"negative pause limit", Config{PauseLimit: -time.Hour}, "pause limit must not be negative, got -1h0m0s"},
		{"negative rate limit", Config{RateLimit: -1}, "rate limit must be positive, got -1"},
		{"NaN rate limit", Config{RateLimit: math.NaN()}, "rate limit must be positive, got NaN"},
		{"negative history rate", Config{HistoryRate: -0.5}, "history rate must be positive, got -0.5"},
		{"NaN history rate", Config{HistoryRate: math.NaN()}, "history rate must be positive, got NaN"},
		{"UI URL without scheme", Config{UIURL: "ap.example.com"}, `UI URL must be an http(s) URL, got "ap.example.com"`},
		{"UI URL of another scheme", Config{UIURL: "ftp://ap.example.com"}, `UI URL must be an http(s) URL, got "ftp://ap.example.com"`},
		{"server URL not http: no links, no error", Config{ServerURL: "sim"}, ""},
		{"several", Config{Overlap: -time.Second, MaxFlows: -1, RateLimit: -2},
			"overlap must not be negative, got -1s\nmax flows must be at least 1, got -1\nrate limit must be positive, got -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if got := errString(err); got != tc.want {
				t.Errorf("Validate() = %q\nwant %q", got, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WithDefaults is what the collector runs with: zero fields take their defaults, a window that is
// off is 0, and its result gives itself again (the command passes it to New, which fills it once
// more).
func TestConfigWithDefaults(t *testing.T) {
	got, err := Config{ServerURL: "https://ap.example.com/api/", RetryWatchOff: true, LateCheckOff: true, PollInterval: time.Minute}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.ServerURL = "https://ap.example.com/api/"
	want.UIURL = "https://ap.example.com"
	want.PollInterval = time.Minute
	want.PollTimeout = 5 * time.Minute
	want.RetryWatchOff, want.RetryWindow = true, 0
	want.LateCheckOff, want.LateWindow = true, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("WithDefaults:\n got %+v\nwant %+v", got, want)
	}
	again, err := got.WithDefaults()
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("WithDefaults twice: %v\n got %+v\nwant %+v", err, again, got)
	}
	if got, _ := (Config{UIURL: "https://ui.example.com/"}).WithDefaults(); got.UIURL != "https://ui.example.com" {
		t.Errorf("UIURL %q, want it without the trailing /", got.UIURL)
	}
}
