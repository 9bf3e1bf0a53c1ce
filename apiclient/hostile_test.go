package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

const hostileKey = "sk-hostile000000000000000000000000000000000000000000000000000000"

// codes records the RequestObserver's codes.
type codes struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *codes) observe(_, code string, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[code]++
}

func (c *codes) get(code string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[code]
}

func hostileClient(t *testing.T, url string, cfg apiclient.Config) (*apiclient.Client, *codes) {
	t.Helper()
	c := &codes{}
	cfg.BaseURL, cfg.APIKey, cfg.Observer = url+"/api", func() string { return hostileKey }, c.observe
	cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	client, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client, c
}

// A redirect to another origin (here another port of the same host, whose requests Go's client
// would send the key to) is refused before anything is sent there, with both URLs named and the
// attempt counted under its own code. Same-origin redirects are followed, a few.
func TestRedirectsStayOnTheAPIsOrigin(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		_, _ = io.WriteString(w, `{"data":[],"next":null}`)
	}))
	defer other.Close()
	sim := simulator.New(simulator.Options{APIKey: hostileKey})
	p := sim.AddProject("P")
	hops := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/flow-runs" && r.URL.Query().Get("to") == "":
			http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusFound)
		case r.URL.Path == "/api/v1/flows" && r.URL.Query().Get("hop") == "":
			http.Redirect(w, r, r.URL.Path+"?hop=1&"+r.URL.RawQuery, http.StatusMovedPermanently)
		case r.URL.Path == "/api/v1/folders":
			hops++
			http.Redirect(w, r, fmt.Sprintf("%s?%s&n=%d", r.URL.Path, r.URL.RawQuery, hops), http.StatusFound)
		default:
			sim.ServeHTTP(w, r)
		}
	}))
	defer api.Close()
	client, c := hostileClient(t, api.URL, apiclient.Config{Retries: 3})

	_, err := client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p})
	if !errors.Is(err, apiclient.ErrRedirect) {
		t.Fatalf("err = %v, want a refused redirect", err)
	}
	for _, want := range []string{api.URL + "/api/v1/flow-runs", other.URL + "/api/v1/flow-runs", "another origin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), hostileKey) {
		t.Errorf("error %q carries the key", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other origin received %d requests", n)
	}
	if c.get(apiclient.CodeRedirectError) != 1 {
		t.Errorf("codes %v: want one %s attempt, not retried", c.m, apiclient.CodeRedirectError)
	}

	// Same origin: followed.
	if _, err := client.ListFlows(context.Background(), apiclient.ListFlowsParams{ProjectID: p}); err != nil {
		t.Errorf("a same-origin redirect was not followed: %v", err)
	}
	// Same origin, endlessly: refused after a few.
	if _, err := client.ListFolders(context.Background(), p, 10, ""); !errors.Is(err, apiclient.ErrRedirect) || hops != 4 {
		t.Errorf("err = %v after %d redirects, want a refusal after 3", err, hops)
	}
}

// A redirect to another host name is refused too, even where Go's client would drop the key:
// that host's answers are not the API's.
func TestRedirectToAnotherHostIsRefused(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":[],"next":null}`)
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	client, _ := hostileClient(t, api.URL, apiclient.Config{})
	if _, err := client.ListProjects(context.Background(), 10, ""); !errors.Is(err, apiclient.ErrRedirect) {
		t.Errorf("err = %v, want a refused redirect", err)
	}
}

// An answer larger than a page of the requested size can plausibly be is cut off while it is
// read (never buffered whole), and counted as a size error; one item larger than MaxItemBytes
// too. A body that trickles past the timeout is a read error. A sane answer afterwards works.
func TestHugeAndTricklingAnswers(t *testing.T) {
	var mode atomic.Value
	mode.Store("huge")
	sim := simulator.New(simulator.Options{APIKey: hostileKey})
	p := sim.AddProject("P")
	var sent atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "huge": // 200 MB of small valid runs, as fast as the client reads
			_, _ = io.WriteString(w, `{"next":null,"data":[`)
			item := `{"id":"aaaaaaaaaaaaaaaaaaaaa","created":"2026-01-01T00:00:00.000Z","status":"SUCCEEDED"},`
			for i := 0; i < 200e6/len(item); i++ {
				if _, err := io.WriteString(w, item); err != nil {
					return
				}
				sent.Add(int64(len(item)))
			}
		case "fat item": // one run of 200 MB
			_, _ = io.WriteString(w, `{"data":[{"id":"aaaaaaaaaaaaaaaaaaaaa","pad":"`)
			chunk := strings.Repeat("x", 64<<10)
			for range 200e6 / len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		case "trickle":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":[`)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		default:
			sim.ServeHTTP(w, r)
		}
	}))
	defer api.Close()
	client, c := hostileClient(t, api.URL, apiclient.Config{Timeout: 300 * time.Millisecond, Retries: 0, MaxItemBytes: 4 << 10})

	_, err := client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p, Limit: 100})
	if !errors.Is(err, apiclient.ErrResponseTooLarge) {
		t.Errorf("200 MB page: err = %v", err)
	}
	// 100 items of at most 4 KiB, plus 64 KiB: the client stopped reading there.
	if limit := int64(64<<10 + 100*4<<10); sent.Load() > 10*limit {
		t.Errorf("the server wrote %d bytes before the client gave up; the cap is %d", sent.Load(), limit)
	}
	mode.Store("fat item")
	if _, err := client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p, Limit: 100}); !errors.Is(err, apiclient.ErrResponseTooLarge) ||
		!strings.Contains(err.Error(), "an item over 4096 bytes") {
		t.Errorf("one 200 MB item: err = %v", err)
	}
	mode.Store("trickle")
	if _, err := client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p}); err == nil || !strings.Contains(err.Error(), "reading body") {
		t.Errorf("trickling body: err = %v", err)
	}
	mode.Store("sane")
	if _, err := client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p}); err != nil {
		t.Errorf("sane answer after the hostile ones: %v", err)
	}
	if c.get(apiclient.CodeTooLarge) != 2 || c.get(apiclient.CodeReadError) != 1 || c.get("200") != 1 {
		t.Errorf("codes %v: want 2 %s, 1 %s and only the sane answer as 200", c.m, apiclient.CodeTooLarge, apiclient.CodeReadError)
	}
}
