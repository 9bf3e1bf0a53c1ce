package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// serverFacts is what GET /v1/flags said of the server at start (API.md §11): edition and
// version ("unknown" when the server has no such route or flag), and the run timeout (0: not
// said).
type serverFacts struct {
	edition, version string
	runTimeout       time.Duration
}

// readServerFacts reads /v1/flags once; a server without the route is normal.
func readServerFacts(ctx context.Context, client *apiclient.Client, log *slog.Logger) serverFacts {
	s := serverFacts{edition: "unknown", version: "unknown"}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f, err := client.GetFlags(ctx)
	if err != nil {
		log.Info("the server does not say its edition and version (GET /v1/flags)", "err", err)
		return s
	}
	if f.Edition != "" {
		s.edition = f.Edition
	}
	if f.Version != "" {
		s.version = f.Version
	}
	s.runTimeout = time.Duration(f.FlowRunTimeSeconds) * time.Second
	log.Info("Activepieces server", "edition", s.edition, "version", s.version, "run_timeout", s.runTimeout)
	return s
}

// info is activepieces_server_info{edition,version} 1.
func (s serverFacts) info() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "activepieces_server_info",
		Help: "The Activepieces server watched, as GET /v1/flags says (\"unknown\" when it does not): edition (ce, ee, cloud) and version."},
		[]string{"edition", "version"})
	g.WithLabelValues(capInfo(s.edition), capInfo(s.version)).Set(1)
	return g
}

// capInfo bounds a label value taken from the server.
func capInfo(v string) string {
	if len(v) > 64 {
		return strings.ToValidUTF8(v[:64], "")
	}
	return v
}

// editionName is how check names an edition.
func editionName(e string) string {
	switch e {
	case apiclient.EditionCommunity:
		return "Community"
	case apiclient.EditionEnterprise:
		return "Enterprise"
	case apiclient.EditionCloud:
		return "Cloud"
	}
	return e
}
