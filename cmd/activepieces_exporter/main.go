// Command activepieces_exporter serves Prometheus metrics about Activepieces flow runs, read by a
// background poll of the Activepieces REST API.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/lmittmann/tint"
)

// Set at build time: -ldflags "-X main.version=… -X main.revision=…".
var (
	version  = "dev"
	revision = ""
)

// VersionCmd prints the version.
type VersionCmd struct{}

// Run implements the command.
func (VersionCmd) Run(ctx *runContext) error {
	fmt.Fprintf(ctx.stdout, "activepieces_exporter %s (revision %s, %s)\n", version, buildRevision(), runtime.Version())
	return nil
}

type runContext struct {
	ctx    context.Context
	cli    *CLI
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	hup    <-chan os.Signal
}

func buildRevision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newLogger(w io.Writer, level, format string, colour bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv}))
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lv, NoColor: !colour, TimeFormat: time.RFC3339}))
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func main() {
	var cli CLI
	kctx := kong.Parse(&cli, kongOptions()...)
	logger := newLogger(os.Stderr, cli.Log.Level, cli.Log.Format, isTerminal(os.Stderr))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := kctx.Run(&runContext{ctx: ctx, cli: &cli, log: logger, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, hup: hup})
	if err != nil {
		logger.Error("exiting", "err", err)
		stop()
		os.Exit(1)
	}
}
