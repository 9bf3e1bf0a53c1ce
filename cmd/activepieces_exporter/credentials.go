package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// credentials are how the exporter authenticates: a platform API key (Enterprise, Cloud), or a
// user's email and password, signing in (Community Edition, API.md §10).
type credentials struct {
	keys    *keySource        // the API key (nil when signing in)
	signIn  *apiclient.SignIn // signing in (nil with an API key)
	signIns *prometheus.CounterVec
}

// passwordFrom returns the password source: the file (re-read at every sign-in, so a changed
// Secret is picked up without a restart) or ACTIVEPIECES_PASSWORD. Neither the password nor any
// part of it is ever put in an error.
func passwordFrom(path string, getenv func(string) string) (func() (string, error), error) {
	if path == "" {
		v := getenv("ACTIVEPIECES_PASSWORD")
		if v == "" {
			return nil, errors.New("no password: set ACTIVEPIECES_PASSWORD or --activepieces.password-file (with --activepieces.email)")
		}
		return func() (string, error) { return v, nil }, nil
	}
	read := func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("reading password file %s: %w", path, err)
		}
		v := strings.TrimRight(strings.TrimPrefix(string(b), "\uFEFF"), "\r\n")
		if v == "" {
			return "", fmt.Errorf("password file %s is empty", path)
		}
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("password file %s holds more than one line: put only the password in it", path)
		}
		return v, nil
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	return read, nil
}

// newCredentials reads the credentials the flags and environment give: an API key, or an email
// with a password. Both at once is a configuration error.
func newCredentials(a ActivepiecesFlags, pollInterval time.Duration, getenv func(string) string) (*credentials, error) {
	keySet := a.APIKeyFile != "" || getenv("ACTIVEPIECES_API_KEY") != ""
	if a.Email == "" {
		if a.PasswordFile != "" {
			return nil, errors.New("--activepieces.password-file needs --activepieces.email (ACTIVEPIECES_EMAIL)")
		}
		keys, err := newKeySource(a.APIKeyFile, getenv)
		if err != nil {
			return nil, err
		}
		return &credentials{keys: keys}, nil
	}
	if keySet {
		return nil, errors.New("both an API key and --activepieces.email are set: use the API key (Enterprise, Cloud) or sign in as a user (Community Edition), not both")
	}
	pw, err := passwordFrom(a.PasswordFile, getenv)
	if err != nil {
		return nil, err
	}
	return signInCredentials(a.Email, pw, pollInterval, "check ACTIVEPIECES_EMAIL and the password (ACTIVEPIECES_PASSWORD or --activepieces.password-file)")
}

// signInCredentials signs in as email, counting every attempt by its result.
func signInCredentials(email string, pw func() (string, error), pollInterval time.Duration, hint string) (*credentials, error) {
	c := &credentials{signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "activepieces_exporter_sign_ins_total",
		Help: "Sign-ins as the --activepieces.email user (Community Edition), by result.",
	}, []string{"result"})}
	for _, r := range apiclient.SignInResults() {
		c.signIns.WithLabelValues(r)
	}
	si, err := apiclient.NewSignIn(apiclient.SignInConfig{Email: email, Password: pw, MinBackoff: pollInterval, CredentialsHint: hint,
		Observer: func(result string) { c.signIns.WithLabelValues(result).Inc() }})
	if err != nil {
		return nil, err
	}
	c.signIn = si
	return c, nil
}

// config sets the client's credentials in cfg.
func (c *credentials) config(cfg *apiclient.Config) {
	if c.signIn != nil {
		cfg.Auth = c.signIn
		return
	}
	cfg.APIKey = c.keys.Get
}

// demoCredentials are the demo server's: its API key, or on a Community demo its demo user.
func demoCredentials(edition string, pollInterval time.Duration) (*credentials, error) {
	if edition == "community" {
		return signInCredentials(simulator.DemoEmail, func() (string, error) { return simulator.DemoPassword, nil }, pollInterval, "the demo user")
	}
	keys := &keySource{}
	k := simulator.DefaultAPIKey
	keys.key.Store(&k)
	return &credentials{keys: keys}, nil
}

// watch re-reads the API key file (see keySource.watch); a password file is re-read at every
// sign-in instead.
func (c *credentials) watch(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	if c.keys != nil {
		c.keys.watch(ctx, hup, 10*time.Second, log)
	}
}
