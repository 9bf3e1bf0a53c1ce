package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
)

// statusPage serves /status: every flow's health at a glance, for teams without Grafana. One
// server-rendered HTML page from the exporter's own state (no external assets, no JavaScript),
// refreshing itself every poll interval. Filters are query parameters, so a view can be
// bookmarked: ?project=<id>, ?q=<part of a flow name>, ?only=failing|stuck|silent|healthy|disabled,
// ?page=N (statusPageSize flows a page).
type statusPage struct {
	src  interface{ Status() collector.Status }
	errs interface{ ErrorsLastHour() int }
	tmpl *template.Template
	// slots bounds the pages rendered at once: the page is for people, a few at a time, and a
	// crowd of clients must not take the CPU and memory the scrape and the probes need.
	slots chan struct{}
	// pace bounds the pages served a second, rendered or cached: people read a few; a crowd
	// fetching as fast as it can (250 KB a page) must not take the CPU the scrape needs.
	pace *rate.Limiter
	// cache holds the pages last rendered of the current snapshot: a crowd asking the same views
	// is answered from it, without rendering again.
	cache pageCache
}

// statusConcurrency is how many status pages are rendered at once (half the CPUs, 1 to 4); more
// wait briefly, then get 503.
var statusConcurrency = max(1, min(4, runtime.GOMAXPROCS(0)/2))

// statusRate is how many status pages are served a second at most (a burst of as many).
const statusRate = 20

// pageCache is the rendered status pages of one snapshot, by query (at most pageCacheSize; the
// oldest goes first). Its own mutex guards it.
type pageCache struct {
	mu    sync.Mutex
	taken time.Time // the snapshot the pages are of (Status.Now)
	pages map[string][]byte
	order []string
}

// pageCacheSize bounds the cached pages (about 250 KB each).
const pageCacheSize = 16

// get returns the page rendered for key of the snapshot taken at taken, if any.
func (c *pageCache) get(taken time.Time, key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.taken.Equal(taken) {
		return nil, false
	}
	b, ok := c.pages[key]
	return b, ok
}

// put keeps a page; a page of a newer snapshot empties the cache first.
func (c *pageCache) put(taken time.Time, key string, page []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.taken.Equal(taken) {
		if taken.Before(c.taken) {
			return // rendered from an older snapshot than the cache holds
		}
		c.taken, c.pages, c.order = taken, map[string][]byte{}, nil
	}
	if _, ok := c.pages[key]; ok {
		return
	}
	if len(c.order) >= pageCacheSize {
		delete(c.pages, c.order[0])
		c.order = c.order[1:]
	}
	c.pages[key], c.order = page, append(c.order, key)
}

// maxStatusPage is the highest page asked for that is taken as such (beyond: that page, empty).
const maxStatusPage = 1 << 20

// statusPageSize is the flows shown on one page: about 250 KB of HTML.
const statusPageSize = 200

//go:embed status.html.tmpl
var statusTemplate string

func newStatusPage(src interface{ Status() collector.Status }, errs interface{ ErrorsLastHour() int }) *statusPage {
	funcs := template.FuncMap{
		"ago":   ago,
		"clock": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
		"lower": strings.ToLower,
		"healths": func() []string {
			return []string{collector.Failing.String(), collector.Stuck.String(), collector.Silent.String(), collector.Healthy.String(), collector.Disabled.String()}
		},
	}
	return &statusPage{src: src, errs: errs, slots: make(chan struct{}, statusConcurrency),
		pace: rate.NewLimiter(statusRate, statusRate), tmpl: template.Must(template.New("status").Funcs(funcs).Parse(statusTemplate))}
}

// statusView is what the template renders.
type statusView struct {
	collector.Status
	Refresh       int // seconds
	Problems      []string
	APIErrors     int
	Summary       []projectSummary
	Sections      []section
	Query         string
	Project, Only string
	Matched       int
	Page, Pages   int
	PrevURL       string
	NextURL       string
}

// projectSummary is a project's line in the header table.
type projectSummary struct {
	collector.ProjectStatus
	Link                            string
	Failing, Stuck, Silent, Healthy int
}

// section is one project's flows on this page.
type section struct {
	Project collector.ProjectStatus
	Flows   []flowRow
}

// flowRow is a flow with what the template draws of it.
type flowRow struct {
	collector.FlowStatus
	Strip                 []stripBar
	Succeeded24, Failed24 int
}

// stripBar is one hour of the 24-hour strip: a green part for succeeded executions over a red one
// for failed ones, heights in pixels of 20.
type stripBar struct {
	X, OKY, OKH, FailY, FailH int
	Empty                     bool
}

func (s *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.paced(r.Context()) {
		if r.Context().Err() == nil {
			w.Header().Set("Retry-After", "5")
			http.Error(w, "the status page is busy; try again in a few seconds", http.StatusServiceUnavailable)
		}
		return
	}
	st := s.src.Status()
	apiErrors := s.errs.ErrorsLastHour()
	key := strconv.Itoa(apiErrors) + " " + r.URL.RawQuery
	if page, ok := s.cache.get(st.Now, key); ok {
		writeStatusPage(w, page)
		return
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-t.C:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the status page is busy; try again in a few seconds", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	v := s.view(r, st, apiErrors)
	var buf bytes.Buffer
	if err := s.tmpl.Execute(&buf, v); err != nil {
		http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.cache.put(st.Now, key, buf.Bytes())
	writeStatusPage(w, buf.Bytes())
}

// view is what the page for r shows of snapshot st: the filters and page its query asks for.
func (s *statusPage) view(r *http.Request, st collector.Status, apiErrors int) statusView {
	q := r.URL.Query()
	v := statusView{Status: st, Refresh: max(5, int(st.PollInterval.Seconds())), APIErrors: apiErrors,
		Query: q.Get("q"), Project: q.Get("project"), Only: q.Get("only"), Page: 1}
	if p, err := strconv.Atoi(q.Get("page")); err == nil && p > 1 {
		v.Page = min(p, maxStatusPage) // (page-1) × statusPageSize must not overflow to page 1
	}
	v.Problems = problems(st)
	needle := strings.ToLower(v.Query)
	first, last := (v.Page-1)*statusPageSize, v.Page*statusPageSize
	for _, p := range st.Projects {
		sum := projectSummary{ProjectStatus: p, Link: "?project=" + url.QueryEscape(p.ID)}
		var rows []flowRow
		for _, f := range p.Flows {
			switch f.Health {
			case collector.Failing:
				sum.Failing++
			case collector.Stuck:
				sum.Stuck++
			case collector.Silent:
				sum.Silent++
			case collector.Healthy:
				sum.Healthy++
			}
			if v.Project != "" && p.ID != v.Project || v.Only != "" && f.Health.String() != v.Only ||
				needle != "" && !strings.Contains(strings.ToLower(f.Name), needle) {
				continue
			}
			if v.Matched >= first && v.Matched < last {
				rows = append(rows, newFlowRow(f))
			}
			v.Matched++
		}
		v.Summary = append(v.Summary, sum)
		if len(rows) > 0 {
			v.Sections = append(v.Sections, section{Project: p, Flows: rows})
		}
	}
	v.Pages = max(1, (v.Matched+statusPageSize-1)/statusPageSize)
	page := func(n int) string {
		u := *r.URL
		qq := u.Query()
		qq.Set("page", strconv.Itoa(n))
		u.RawQuery = qq.Encode()
		return "?" + u.RawQuery
	}
	if v.Page > 1 {
		v.PrevURL = page(v.Page - 1)
	}
	if v.Page < v.Pages {
		v.NextURL = page(v.Page + 1)
	}
	return v
}

// paced waits for the page's turn under statusRate: at most a second, and a request that would
// wait longer is held that second before it is refused, so a client that retries at once cannot
// turn refusals into a flood of their own.
func (s *statusPage) paced(ctx context.Context) bool {
	res := s.pace.Reserve()
	delay := res.Delay()
	if delay > time.Second {
		res.Cancel()
		delay = time.Second
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return delay < time.Second
	case <-ctx.Done():
		res.Cancel()
		return false
	}
}

// writeStatusPage answers with a rendered status page.
func writeStatusPage(w http.ResponseWriter, page []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	_, _ = w.Write(page)
}

func newFlowRow(f collector.FlowStatus) flowRow {
	row := flowRow{FlowStatus: f, Strip: make([]stripBar, len(f.Hours))}
	for i, h := range f.Hours {
		row.Succeeded24 += h.Succeeded
		row.Failed24 += h.Failed
		b := stripBar{X: i * 6}
		total := h.Succeeded + h.Failed
		if total == 0 {
			b.Empty = true
		} else {
			b.FailH = max(2, 20*h.Failed/total)
			if h.Failed == 0 {
				b.FailH = 0
			}
			b.OKH = 20 - b.FailH
			b.OKY, b.FailY = 0, b.OKH
		}
		row.Strip[i] = b
	}
	return row
}

// problems are the plain sentences the header says when something is wrong.
func problems(st collector.Status) []string {
	var out []string
	if !st.Polled {
		out = append(out, "The first poll has not finished yet: what is shown may be incomplete.")
	}
	for _, p := range st.Projects {
		if !p.Failing {
			continue
		}
		at := p.FailingAt.UTC().Format("15:04 MST")
		switch e := p.LastError; {
		case strings.Contains(e, "authentication failed"):
			out = append(out, fmt.Sprintf("The API key was rejected at %s (project %s): the numbers below stopped then.", at, p.Name))
		case strings.Contains(e, "not authorized"):
			out = append(out, fmt.Sprintf("The API key may not read project %s (refused since %s).", p.Name, at))
		default:
			out = append(out, fmt.Sprintf("Polls of project %s fail since %s: %s", p.Name, at, e))
		}
	}
	if st.DroppedFlows > 0 {
		out = append(out, fmt.Sprintf("%d flows are not shown or exported: --metrics.max-flows was reached.", st.DroppedFlows))
	}
	return out
}

// ago says how long ago t was, coarsely ("never" for the zero time).
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}
