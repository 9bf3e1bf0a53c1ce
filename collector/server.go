package collector

import (
	"context"
	"errors"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// Server is what GET /v1/flags says of the Activepieces server (API.md §11), read at the first
// poll and again with each project discovery: an upgrade or a changed run timeout shows without
// a restart.
type Server struct {
	// Edition is "ce", "ee" or "cloud"; Version is e.g. "0.85.4". "unknown" when the server
	// does not say (no such route, no such flag).
	Edition, Version string
	// RunTimeout is FLOW_RUN_TIME_SECONDS, how long a run may run (0: the server does not say).
	RunTimeout time.Duration
}

const unknown = "unknown"

// serverState is the model's knowledge of the server: what it last said and what was logged.
type serverState struct {
	Server
	read   bool      // /v1/flags answered at least once
	at     time.Time // when /v1/flags was last asked
	failed string    // the error last logged for /v1/flags ("" when it answers)
}

// flagsTimeout bounds a read of /v1/flags: a slow or missing route must not hold up discovery.
const flagsTimeout = 15 * time.Second

// flagsAnswer is what a read of /v1/flags brought back.
type flagsAnswer struct {
	flags apiclient.Flags
	err   error
}

// askServer starts a read of /v1/flags beside discovery's listing (it costs the poll no time of
// its own), at most once per ProjectsInterval: a discovery that keeps failing does not ask it at
// every poll. It returns nil when not due; else a channel that gets the answer. The read is a
// method of env: it cannot reach the model.
func (e *model) askServer(ctx context.Context) <-chan flagsAnswer {
	if !e.server.at.IsZero() && e.now().Sub(e.server.at) < e.cfg.ProjectsInterval {
		return nil
	}
	e.server.at = e.now()
	ch := make(chan flagsAnswer, 1)
	go func(env *env) {
		ctx, cancel := context.WithTimeout(ctx, flagsTimeout)
		defer cancel()
		f, err := env.api.GetFlags(ctx)
		ch <- flagsAnswer{f, err}
	}(e.env)
	return ch
}

// learnServer applies what /v1/flags said. A server without the route, or one that fails, is
// normal: it keeps what it said last ("unknown" until it says), and the failure is logged when
// it changes.
func (e *model) learnServer(ch <-chan flagsAnswer) {
	if ch == nil {
		return
	}
	a := <-ch
	if err := a.err; err != nil {
		if msg := err.Error(); msg != e.server.failed {
			e.server.failed = msg
			hint := "edition and version stay as last read"
			if errors.Is(err, apiclient.ErrRouteNotFound) || errors.Is(err, apiclient.ErrNotFound) {
				hint = "an older server or a proxy without the route: edition and version are unknown"
			}
			e.log.Info("the server does not say its edition and version (GET /v1/flags)", "err", err, "hint", hint)
		}
		return
	}
	e.server.failed = ""
	s := Server{Edition: orUnknown(a.flags.Edition), Version: orUnknown(a.flags.Version),
		RunTimeout: time.Duration(a.flags.FlowRunTimeSeconds) * time.Second}
	if !e.server.read || s != e.server.Server {
		e.log.Info("Activepieces server", "edition", s.Edition, "version", s.Version, "run_timeout", s.RunTimeout,
			"changed", e.server.read)
	}
	e.server.Server, e.server.read = s, true
}

func orUnknown(v string) string {
	if v == "" {
		return unknown
	}
	return capLabel(v)
}

// stuckAfter is the server's run timeout when it says it, else StuckAfter.
func (e *model) stuckAfter() time.Duration {
	if e.server.RunTimeout > 0 {
		return e.server.RunTimeout
	}
	return StuckAfter
}
