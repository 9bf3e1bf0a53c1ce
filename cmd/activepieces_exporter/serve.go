package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/time/rate"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// ServeCmd polls and serves.
type ServeCmd struct{}

// wired is what serve and check share: an API client and an exporter, with their registry.
type wired struct {
	cfg      collector.Config // the collector's settings in effect (collector.Config.WithDefaults)
	creds    *credentials
	client   *apiclient.Client
	exporter *collector.Exporter
	registry *prometheus.Registry
	api      *collector.APIMetrics
	// gz is the exporter's snapshots gzip-compressed, as it publishes them, for /metrics.
	gz *gzipCache
}

// wire builds the client, the exporter and the registry. In demo mode it first starts the
// simulator on loopback and points the client at it.
func (rc *runContext) wire(ctx context.Context, wg *sync.WaitGroup, o wireOptions) (*wired, error) {
	c := rc.cli
	cfg := c.collectorConfig()
	url := c.Activepieces.URL
	var creds *credentials
	var err error
	if c.Demo.Enabled {
		if url, err = startDemo(ctx, wg, c.Demo, rc.log); err != nil {
			return nil, err
		}
		cfg.ServerURL = url
		creds, err = demoCredentials(c.Demo.Edition, cfg.PollInterval)
	} else {
		creds, err = newCredentials(c.Activepieces, cfg.PollInterval, rc.getenv)
	}
	if err != nil {
		return nil, err
	}
	if o.noStateFile {
		cfg.StateFile = ""
	}
	// The settings in effect, defaults filled: the API client is paced at the collector's
	// RateLimit, whose meaning (0: the default) is the collector's. Kong has validated them.
	if cfg, err = cfg.WithDefaults(); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	apiMetrics := collector.NewAPIMetrics()
	acfg := apiclient.Config{
		BaseURL: url, Timeout: c.API.Timeout, Retries: c.API.Retries,
		MaxItemBytes: c.API.MaxItem, MaxFlowBytes: c.API.MaxFlow,
		Limiter:   rate.NewLimiter(rate.Limit(cfg.RateLimit), max(1, int(cfg.RateLimit))),
		Observer:  apiMetrics.Observe,
		UserAgent: "activepieces_exporter/" + version,
	}
	creds.config(&acfg)
	client, err := apiclient.New(acfg)
	if err != nil {
		return nil, err
	}
	gz := &gzipCache{}
	opts := []collector.Option{collector.WithPublished(gz.published)}
	if creds.signIn != nil {
		opts = append(opts, collector.WithDefaultProject(func() string { s, _ := creds.signIn.Session(); return s.ProjectID }))
	}
	exp, err := collector.New(cfg, client, rc.log, opts...)
	if err != nil {
		return nil, err
	}
	// The exporter's own samples are served from the snapshot it renders after each poll (see
	// metricsHandler); the registry holds the rest.
	reg := prometheus.NewRegistry()
	reg.MustRegister(apiMetrics, collector.NewBuildInfo(version, buildRevision(), runtime.Version()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if creds.signIns != nil {
		reg.MustRegister(creds.signIns)
	}
	return &wired{cfg: cfg, creds: creds, client: client, exporter: exp, registry: reg, api: apiMetrics, gz: gz}, nil
}

// wireOptions are what a command changes in the wiring.
type wireOptions struct {
	// noStateFile ignores --state.file: check must not read or overwrite a running exporter's state.
	noStateFile bool
}

// startDemo serves a simulator with a run generator on a loopback port until ctx ends.
func startDemo(ctx context.Context, wg *sync.WaitGroup, d DemoFlags, log *slog.Logger) (string, error) {
	runsPerSecond := d.Rate
	opts := simulator.Options{Raw: true}
	if d.Edition == "community" {
		opts.Edition = "community"
	}
	sim, gen := simulator.NewDemo(opts, runsPerSecond, uint64(time.Now().UnixNano()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo simulator: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	go func() {
		defer wg.Done()
		gen.Run(ctx, 250*time.Millisecond)
		_ = srv.Close()
	}()
	url := "http://" + ln.Addr().String() + "/api"
	log.Info("demo: serving the Activepieces simulator", "url", url, "runs_per_second", runsPerSecond, "edition", d.Edition)
	return url, nil
}

// Run implements the command. On shutdown the poll is cancelled and waited for before the state
// file is released: no other process may take the file while this one can still write it.
func (ServeCmd) Run(rc *runContext) error {
	ctx, cancel := context.WithCancel(rc.ctx)
	var wg sync.WaitGroup
	w, err := rc.wire(ctx, &wg, wireOptions{})
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	defer func() {
		cancel()
		wg.Wait()
		w.exporter.Close()
	}()
	c := rc.cli
	rc.log.Info("starting activepieces_exporter", "version", version, "url", w.client.BaseURL(), "listen", c.Web.ListenAddress)

	wg.Add(2)
	go func() { defer wg.Done(); w.exporter.Run(ctx) }()
	go func() { defer wg.Done(); w.creds.watch(ctx, rc.hup, rc.log) }()

	mux, err := newMux(c, w, rc.log)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(rc.log.Handler(), slog.LevelWarn),
	}
	addrs := []string{c.Web.ListenAddress}
	systemd := false
	flags := &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &c.Web.ConfigFile}
	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(srv, flags, rc.log) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	rc.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func newMux(c *CLI, w *wired, log *slog.Logger) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	metrics := newMetricsHandler(w.exporter, w.registry, c.Web.MaxRequests, log)
	metrics.gz = w.gz // what the exporter renders into: it keeps no bytes of its own
	mux.Handle(c.Web.TelemetryPath, methods(metrics))
	mux.Handle("/-/healthy", methods(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		_, _ = rw.Write([]byte("Healthy\n"))
	})))
	mux.Handle("/-/ready", methods(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.exporter.Ready(); err != nil {
			http.Error(rw, "Not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("Ready\n"))
	})))
	links := []web.LandingLinks{{Address: c.Web.TelemetryPath, Text: "Metrics"}}
	if c.Web.StatusPage && c.Web.TelemetryPath != "/status" {
		mux.Handle("/status", methods(newStatusPage(w.exporter, w.api)))
		links = append(links, web.LandingLinks{Address: "/status", Text: "Status of every flow"})
	}
	links = append(links, web.LandingLinks{Address: "/-/healthy", Text: "Health"}, web.LandingLinks{Address: "/-/ready", Text: "Readiness"})
	if c.Web.TelemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Activepieces Exporter",
			Description: "Prometheus exporter for Activepieces flow runs",
			Version:     version,
			Profiling:   "false", // no pprof handlers are served
			Links:       links,
		})
		if err != nil {
			return nil, fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}
