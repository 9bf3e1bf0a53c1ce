package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// Who owns what:
//
//   - env is what the exporter is built with. It does not change after New, so every goroutine
//     may read it. Its few shared parts are safe for concurrent use by their own types (the API
//     client, the rate limiter, the poll histogram, the exposition with its atomics).
//   - model is the exporter's mutable state: the projects, their flows and ledgers, the server's
//     clock, the poll bookkeeping. It has one owner at a time: the goroutine that has received it
//     from Exporter.own (a channel of capacity one), until it sends it back. Nothing else holds a
//     *model. Run's poll loop owns it for each tick; the background history reader owns it only
//     to take a page's job and to apply the page it fetched, not while it waits for the API.
//   - A poll owns the model throughout and forks one goroutine per project to fetch: those read
//     their own project (methods of env, which cannot reach the model) while the poll waits for
//     them, and hand back what they read; the poll applies it once they are all done.
//   - Readers on other goroutines (scrapes, /status, readiness, the budget) never touch the
//     model: they read what its owner published (the exposition's Snapshot, and published values
//     behind atomic pointers), which is immutable once published. What they tell back (a
//     snapshot served, OpenMetrics or a status page wanted) are atomics the owner reads.

// env is everything an Exporter is built with (read-only after New).
type env struct {
	cfg       Config
	api       *apiclient.Client
	log       *slog.Logger
	now       func() time.Time
	startedAt time.Time
	flowSet   map[string]bool // cfg.Flows as a set
	fam       []*family
	pollHist  prometheus.Histogram
	expo      *exposition
	onPublish func(Rendering) error // WithPublished's hook, or nil
	// The background reader of look-back history (history.go): its own pace, and a wake-up when
	// a first poll leaves history to read.
	historyLimiter *rate.Limiter
	historyWake    chan struct{}
	pub            *publisher
	// defaultProject is the signed-in user's default project ("" when unknown): discovery's last
	// resort on servers that list no projects.
	defaultProject func() string
}

// Exporter polls the API and is the prometheus.Collector for everything it learns. Its methods
// are safe for concurrent use.
type Exporter struct {
	*env
	// own holds the model while nobody owns it: receive it to own it, send it back when done.
	own     chan *model
	release func() // of the state file lock
}

// model is the mutable state of the exporter: whoever received it from Exporter.own owns it.
type model struct {
	*env
	projects          map[string]*projectState
	pollSeq           uint64
	completed         uint64 // the last poll whose results are all applied
	clock             serverClock
	lastDiscovery     time.Time
	discoveryErr      error
	up                bool
	polled            bool
	lastPollOK        time.Time
	exportedFlows     int
	droppedFlows      int
	droppedLoggedN    int             // droppedFlows when last logged
	deniedLogged      map[string]bool // projects the signed-in user was found not to read (logged once)
	server            serverState     // what GET /v1/flags said
	trackedDropped    float64
	stateSaveFailures float64
	saveFailing       string // the state save error last logged ("" when saving works)
	savedPrint        uint64 // statePrint as of the last successful save of the state file
	rateCheckedFor    int    // the number of projects the rate limit was last checked for
	outOfTime         bool   // the last poll ran out of time (for logging the change only)

	// Rendering under Run: when the exposition was last rendered, what that cost, and whether a
	// tick's results wait for a render.
	renderedAt    time.Time
	renderCost    time.Duration
	renderPending bool
	renderSize    [2]int // bytes of the last text and OpenMetrics renderings (render)
	// partBooks record the parts of the text and OpenMetrics renderings given to the publisher.
	partBooks [2]partBook
}

// Option changes an Exporter built by New.
type Option func(*env)

// WithDefaultProject gives discovery a project to fall back on when the server lists none (the
// signed-in user's default project).
func WithDefaultProject(id func() string) Option { return func(e *env) { e.defaultProject = id } }

// WithPublished has the exporter publish its renderings through publish instead of keeping them:
// it calls publish with each format it renders, a Rendering that publish writes where it keeps
// it, in the form it keeps it (compressed, say). The exporter keeps none of the bytes, only the
// poll: its Snapshot and OpenMetricsSnapshot then return snapshots holding their Poll only. Without it, the exporter
// renders into bytes and keeps each snapshot whole: at 10k flows, over 60 MB per format.
//
// After a poll, publish is given the text, then, once OpenMetrics has been asked for, the
// OpenMetrics of the same poll (as also when the first OpenMetricsSnapshot renders OpenMetrics for
// a poll already published). An error from publish is the render's: a poll whose text was not
// published is not made visible (readers keep the one before), one whose OpenMetrics was not is
// visible without it (the next OpenMetricsSnapshot renders it again).
//
// publish is called by the model's owner, on the poll's goroutine, while no other poll or history
// page can be applied, and before readers can get a snapshot of that poll (Snapshot's Poll). Its
// time counts in the render's cost (which spaces renders under Run). It must not call the
// Exporter's methods that wait for the model (Collect, WriteText, OpenMetricsSnapshot, ...).
func WithPublished(publish func(Rendering) error) Option {
	return func(e *env) { e.onPublish = publish }
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(e *env) { e.now = now } }

// New builds an Exporter. It does not poll until Run or PollOnce is called. Runs created before
// now are history: they set the "last run" gauges but are not counted.
func New(cfg Config, api *apiclient.Client, logger *slog.Logger, opts ...Option) (*Exporter, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	if api == nil || logger == nil {
		return nil, errors.New("collector: api client and logger are required")
	}
	v := &env{cfg: cfg, api: api, log: logger, now: time.Now, flowSet: map[string]bool{}, expo: newExposition(),
		historyLimiter: newHistoryLimiter(cfg.HistoryRate), historyWake: make(chan struct{}, 1), pub: &publisher{}}
	for _, o := range opts {
		o(v)
	}
	for _, f := range cfg.Flows {
		v.flowSet[f] = true
	}
	v.startedAt = v.now()
	v.fam = newFamilies()
	v.pollHist = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "activepieces_exporter_poll_duration_seconds",
		Help:    pollDurationHelp,
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
	})
	m := &model{env: v, projects: map[string]*projectState{}, deniedLogged: map[string]bool{},
		server: serverState{Server: Server{Edition: unknown, Version: unknown}}}
	e := &Exporter{env: v, own: make(chan *model, 1)}
	if cfg.StateFile != "" {
		if !lockSupported {
			logger.Warn("the state file cannot be locked on this operating system: make sure no two exporters use it", "file", cfg.StateFile)
		}
		release, err := lockFile(cfg.StateFile, lockPath(cfg.StateFile))
		if err != nil {
			return nil, err
		}
		e.release = release
		if n := removeStaleTemps(cfg.StateFile); n > 0 {
			logger.Info("removed temporary state files left by saves that were killed", "file", cfg.StateFile, "removed", n)
		}
		if !cfg.StateReset {
			if err := m.loadState(); err != nil {
				release()
				return nil, err
			}
		}
	}
	for _, id := range cfg.Projects {
		if m.projects[id] == nil && cfg.ownsProject(id) {
			m.projects[id] = newProjectState(id, id, v.startedAt)
		}
	}
	if len(cfg.Projects) > 0 {
		m.checkRateLocked()
	}
	if err := m.refreshExposition(); err != nil {
		return nil, fmt.Errorf("rendering metrics: %w", err)
	}
	e.own <- m
	return e, nil
}

// pollDurationHelp is the help of activepieces_exporter_poll_duration_seconds, in one place.
const pollDurationHelp = "Duration of background polls: under Run, each tick polling the projects due; PollOnce, every project."

// acquire waits for the model and owns it until the returned release is called.
func (e *Exporter) acquire() (m *model, release func()) {
	m = <-e.own
	return m, func() { e.own <- m }
}

// Close releases the state file; the exporter must not poll after it.
func (e *Exporter) Close() {
	if e.release != nil {
		e.release()
		e.release = nil
	}
}

// Run polls until ctx ends, and reads the look-back history in the background meanwhile. Each
// project is polled every PollInterval at its own moment (its phase): the projects are spread
// evenly over the interval, polled in ticks of a tenth of it, instead of all at its start. The
// first poll of every project is at once. The state file (if any) is saved before each render that
// shows a changed count, so what a scrape sees is on disk; when ctx ends it is saved a last time (a tick's results may
// wait for a render).
func (e *Exporter) Run(ctx context.Context) {
	go e.RunHistory(ctx)
	for {
		m, release := e.acquire()
		if err := m.poll(ctx, true); err != nil && ctx.Err() == nil {
			e.log.Debug("poll finished with errors", "err", err)
		}
		tick := m.tick()
		release()
		if !e.waitTick(ctx, e.untilNextTick(tick)) {
			if e.cfg.StateFile != "" {
				m, release := e.acquire()
				_ = m.saveStateLogged() // logged
				release()
			}
			return
		}
	}
}

// waitTick waits d for Run's next tick, false when ctx ends first. Meanwhile, each time a scrape
// is given a newer snapshot, the runs that waited for a new flow's zero series to be served are
// applied and rendered at once: the flow's first failure is then seen one scrape after its
// zero, not one poll.
func (e *Exporter) waitTick(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-e.expo.servedWake:
			m, release := e.acquire()
			if m.releaseDeferredLocked() {
				_, _ = m.saveAndRender() // both logged
			}
			release()
		}
	}
}

// PollOnce runs one poll of every project and returns the errors met. Concurrent calls run one
// after the other.
func (e *Exporter) PollOnce(ctx context.Context) error {
	m, release := e.acquire()
	defer release()
	return m.poll(ctx, false)
}

// Server is what the server last said of itself (GET /v1/flags, read with each discovery). It
// waits for the model's owner: for check, not for a request handler.
func (e *Exporter) Server() Server {
	m, release := e.acquire()
	defer release()
	return m.server.Server
}

// tick is how often Run looks for projects due: PollInterval split into as many ticks as there
// are projects, 10 at most (each tick that polls renders the metrics again), 100 ms at least.
func (e *model) tick() time.Duration {
	n := len(e.projects)
	return max(e.cfg.PollInterval/time.Duration(min(max(n, 1), 10)), min(100*time.Millisecond, e.cfg.PollInterval))
}

// untilNextTick is how long until the next tick on the grid startedAt + k·tick. Ticks keep to the
// grid the projects' phases are on rather than follow the previous tick: a timer fires a little
// late, and waiting a tick from each start let that lateness add up until ticks fell just before
// the projects' slots, where every other tick found nothing due (polls at twice the interval, for
// hours at a time). A tick that overran its slot waits for the next one.
func (e *env) untilNextTick(tick time.Duration) time.Duration {
	since := e.now().Sub(e.startedAt)
	return (since/tick+1)*tick - since
}

// nextSlot is when a project polled at t with phase (its offset in PollInterval) is due next:
// the first moment of its phase at least half an interval after t. In steady state that is t +
// PollInterval; a project polled off its phase (the first poll, a change in the number of
// projects) moves onto it.
func (e *env) nextSlot(phase time.Duration, t time.Time) time.Time {
	iv := e.cfg.PollInterval
	base := e.startedAt.Add(phase)
	k := (t.Add(iv/2).Sub(base) + iv - 1) / iv // ceil
	return base.Add(k * iv)
}

// publisher holds what the model's owner last published for readers on other goroutines.
type publisher struct {
	facts  atomic.Pointer[facts]
	status atomic.Pointer[Status]
	// statusAskedAt is when a status page was last asked for (unix ns): renders publish its
	// snapshot too until statusWanted after that.
	statusAskedAt atomic.Int64
}

// facts is what readiness, the poll budget and the history progress need, as of the latest
// rendered exposition: immutable once published.
type facts struct {
	polled          bool
	projects, never int
	oldest          time.Time // the oldest last successful poll of a project
	period          time.Duration
	perPoll         float64
	perSecond       float64
	historyPending  int
}

// publishFacts publishes the facts of the model as it is (the owner calls it when it renders).
func (e *model) publishFacts() {
	f := &facts{polled: e.polled, projects: len(e.projects)}
	for _, p := range e.projects {
		switch {
		case p.lastSuccess.IsZero():
			f.never++
		case f.oldest.IsZero() || p.lastSuccess.Before(f.oldest):
			f.oldest = p.lastSuccess
		}
		if p.history != nil {
			f.historyPending++
		}
	}
	if len(e.projects) == 0 {
		f.oldest = e.lastPollOK // an empty platform: discovery is the poll
	}
	mix := e.pollMixLocked()
	f.perPoll, f.period = e.pollCost(len(e.projects), mix)
	f.perSecond = float64(len(e.projects)) * mix.cost(e.cfg, e.cfg.PollInterval) / e.cfg.PollInterval.Seconds()
	e.pub.facts.Store(f)
}

// Ready reports whether every project has been polled successfully and the metrics served hold
// what those polls found, the oldest of those polls within three poll periods (the poll interval,
// or the longer effective period when the rate limit cannot sustain it for this many projects).
func (e *Exporter) Ready() error {
	f := e.pub.facts.Load()
	switch {
	case !f.polled:
		return errors.New("first poll not finished")
	case f.never > 0 && f.never == f.projects || f.oldest.IsZero():
		return errors.New("no poll has succeeded yet")
	case f.never > 0:
		return fmt.Errorf("%d of %d projects not polled yet", f.never, f.projects)
	case e.now().Sub(f.oldest) > 3*f.period:
		return fmt.Errorf("last successful poll was %s ago", e.now().Sub(f.oldest).Round(time.Second))
	}
	return nil
}

// PollBudget is what polling costs in steady state: the projects polled, the requests a poll of
// one costs on average, the requests per second that takes at PollInterval, and the effective
// period of each project's poll at RateLimit (PollInterval, or longer when the rate limit cannot
// sustain it). As of the latest rendered exposition.
func (e *Exporter) PollBudget() (projects int, perPoll, perSecond float64, period time.Duration) {
	f := e.pub.facts.Load()
	return f.projects, f.perPoll, f.perSecond, f.period
}

// HistoryPending is how many projects have look-back history left to read, as of the latest
// rendered exposition.
func (e *Exporter) HistoryPending() int { return e.pub.facts.Load().historyPending }
