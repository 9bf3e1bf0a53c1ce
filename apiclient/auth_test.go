package apiclient_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

const (
	testEmail    = "ops@example.com"
	testPassword = "s3cret-Passw0rd!"
	testHint     = "check ACTIVEPIECES_EMAIL and the password file"
	signInPath   = "/api/v1/authentication/sign-in"
	projectsPath = "/api/v1/projects"
)

// fakeClock is the Client's clock: it moves only when told, and its waits return at once.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jwt builds an unsigned-looking HS256 token with the given claims.
func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p, _ := json.Marshal(claims)
	return h + "." + enc.EncodeToString(p) + ".c2lnbmF0dXJl"
}

// fakeAP is the part of an Activepieces server that signing in touches: sign-in, a project
// listing that checks the token, and flags.
type fakeAP struct {
	t     *testing.T
	clock *fakeClock
	srv   *httptest.Server

	mu       sync.Mutex
	password string
	lifetime time.Duration // of the tokens issued (default 7 days)
	opaque   bool          // issue tokens that are not JWTs
	issued   int
	valid    map[string]bool
	// rejectAll refuses every token presented with this code (INVALID_BEARER_TOKEN or SESSION_EXPIRED).
	rejectAll string
	rejected  map[string]string // token → the code it is refused with
	override  http.HandlerFunc  // when set, answers every request
	// signInAnswer, when set, answers sign-ins instead (status, body, headers).
	signInAnswer func() (int, string, http.Header)
	gate         chan struct{} // when set, sign-ins wait for it to close
	hits         map[string]int
	auth         []string // Authorization headers of non-sign-in requests, in order
	signInBodies []string
	userAgents   []string
}

func newFakeAP(t *testing.T, clock *fakeClock) *fakeAP {
	f := &fakeAP{t: t, clock: clock, password: testPassword, valid: map[string]bool{}, rejected: map[string]string{}, hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAP) hit(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeAP) set(fn func(f *fakeAP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeAP) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	if o := f.override; o != nil {
		f.mu.Unlock()
		o(w, r)
		return
	}
	if r.URL.Path == signInPath {
		f.mu.Unlock()
		f.signIn(w, r)
		return
	}
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	rejectAll, valid := f.rejectAll, f.valid[tok]
	if code := f.rejected[tok]; code != "" {
		rejectAll = code
	}
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/api/v1/flags":
		reply(w, 200, `{"EDITION":"ce","CURRENT_VERSION":"0.85.4"}`)
	case r.URL.Path != projectsPath && r.URL.Path != "/api/v1/users/projects":
		reply(w, 404, `{"statusCode":404,"error":"Not Found","message":"Route not found"}`)
	case rejectAll == "SESSION_EXPIRED" && tok != "":
		reply(w, 403, `{"code":"SESSION_EXPIRED","params":{"message":"session expired"}}`)
	case rejectAll != "" || !valid:
		reply(w, 401, `{"code":"INVALID_BEARER_TOKEN","params":{"message":"invalid access token or session expired"}}`)
	default:
		reply(w, 200, `{"data":[{"id":"w0UMzSmue5InrQO2LTBRI","displayName":"Ops","platformId":"p","type":"PERSONAL"}],"next":null,"previous":null}`)
	}
}

func (f *fakeAP) signIn(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	gate, answer := f.gate, f.signInAnswer
	f.userAgents = append(f.userAgents, r.UserAgent())
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	body, _ := io.ReadAll(r.Body)
	var in struct{ Email, Password string }
	if r.Method != http.MethodPost || r.Header.Get("Authorization") != "" || r.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &in) != nil {
		reply(w, 400, `{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body must be JSON"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signInBodies = append(f.signInBodies, string(body))
	if answer != nil {
		status, b, h := answer()
		for k, v := range h {
			w.Header()[k] = v
		}
		reply(w, status, b)
		return
	}
	if in.Email != testEmail || in.Password != f.password {
		reply(w, 401, `{"code":"INVALID_CREDENTIALS","params":null}`)
		return
	}
	f.issued++
	life := f.lifetime
	if life == 0 {
		life = 7 * 24 * time.Hour
	}
	iat := f.clock.Now().Unix()
	tok := jwt(map[string]any{"id": "u1", "type": "USER", "n": f.issued, "iat": iat, "exp": iat + int64(life/time.Second)})
	if f.opaque {
		tok = fmt.Sprintf("opaque-token-%d", f.issued)
	}
	f.valid[tok] = true
	out, _ := json.Marshal(map[string]any{"id": "u1", "platformRole": "ADMIN", "status": "ACTIVE", "platformId": "plat1",
		"verified": true, "email": testEmail, "token": tok, "projectId": "w0UMzSmue5InrQO2LTBRI", "firstName": "Ops"})
	reply(w, 200, string(out))
}

// reject makes the server refuse every token issued so far with code (INVALID_BEARER_TOKEN: a
// changed AP_JWT_SECRET; SESSION_EXPIRED: a changed password); later tokens work.
func (f *fakeAP) reject(code string) {
	f.set(func(f *fakeAP) {
		for tok := range f.valid {
			f.rejected[tok] = code
		}
	})
}

type results struct {
	mu sync.Mutex
	l  []string
}

func (r *results) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.l = append(r.l, s)
}

func (r *results) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.l)
}

type signInEnv struct {
	ap       *fakeAP
	clock    *fakeClock
	signIn   *apiclient.SignIn
	client   *apiclient.Client
	results  *results
	password func() string
	setPW    func(string)
}

func newSignInEnv(t *testing.T, sc apiclient.SignInConfig, cfg apiclient.Config) *signInEnv {
	t.Helper()
	e := &signInEnv{clock: newFakeClock(), results: &results{}}
	e.ap = newFakeAP(t, e.clock)
	var mu sync.Mutex
	pw := testPassword
	e.password = func() string { mu.Lock(); defer mu.Unlock(); return pw }
	e.setPW = func(s string) { mu.Lock(); defer mu.Unlock(); pw = s }
	sc.Email = testEmail
	if sc.Password == nil {
		sc.Password = func() (string, error) { return e.password(), nil }
	}
	sc.Observer = e.results.add
	if sc.CredentialsHint == "" {
		sc.CredentialsHint = testHint
	}
	s, err := apiclient.NewSignIn(sc)
	if err != nil {
		t.Fatal(err)
	}
	e.signIn = s
	cfg.BaseURL, cfg.Auth, cfg.Clock = e.ap.srv.URL+"/api", s, e.clock
	cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	if e.client, err = apiclient.New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *signInEnv) listProjects(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.client.ListProjects(ctx, 10, "")
	return err
}

func (e *signInEnv) token(t *testing.T) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.signIn.Token(ctx)
}

// One sign-in serves every request while the token is fresh; the sign-in is a POST of the
// email and password, without Authorization, with the client's User-Agent; the session tells
// the user's default project and platform role, never the token.
func TestSignInTokenIsReused(t *testing.T) {
	var seen []string
	e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{UserAgent: "exporter-test/1",
		Observer: func(endpoint, code string, _ time.Duration) { seen = append(seen, endpoint+" "+code) }})
	for range 3 {
		if err := e.listProjects(t); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.ap.hit(signInPath); n != 1 {
		t.Errorf("%d sign-ins for 3 requests, want 1", n)
	}
	tok, _ := e.token(t)
	e.ap.set(func(f *fakeAP) {
		if len(f.auth) != 3 || f.auth[0] != "Bearer "+tok || f.auth[2] != f.auth[0] {
			t.Errorf("Authorization headers %q, want the token's thrice", f.auth)
		}
		if f.signInBodies[0] != `{"email":"`+testEmail+`","password":"`+testPassword+`"}` || f.userAgents[0] != "exporter-test/1" {
			t.Errorf("sign-in body %s, User-Agent %q", f.signInBodies[0], f.userAgents[0])
		}
	})
	if want := []string{"sign-in 200", "projects 200", "projects 200", "projects 200"}; !slices.Equal(seen, want) {
		t.Errorf("request observer saw %q, want %q", seen, want)
	}
	if got := e.results.list(); !slices.Equal(got, []string{apiclient.SignInSuccess}) {
		t.Errorf("sign-in results %q", got)
	}
	sess, ok := e.signIn.Session()
	want := apiclient.Session{UserID: "u1", Email: testEmail, PlatformID: "plat1", PlatformRole: "ADMIN",
		ProjectID: "w0UMzSmue5InrQO2LTBRI", SignedIn: e.clock.Now(), Expires: e.clock.Now().Add(7 * 24 * time.Hour)}
	if !ok || sess != want {
		t.Errorf("session %+v, %v; want %+v", sess, ok, want)
	}
}

// A token is renewed before use once less than a fifth of its lifetime exp − iat is left:
// after 5.6 days of a 7-day token, after 8 s of a 10-s one.
func TestSignInRenewsAtFourFifthsOfTheLifetime(t *testing.T) {
	for _, life := range []time.Duration{7 * 24 * time.Hour, 10 * time.Second} {
		t.Run(life.String(), func(t *testing.T) {
			e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{})
			e.ap.set(func(f *fakeAP) { f.lifetime = life })
			first, err := e.token(t)
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(life*4/5 - time.Second)
			if tok, _ := e.token(t); tok != first || e.ap.hit(signInPath) != 1 {
				t.Fatalf("signed in again with more than a fifth of the lifetime left (%d sign-ins)", e.ap.hit(signInPath))
			}
			e.clock.Advance(time.Second)
			second, err := e.token(t)
			if err != nil || second == first || e.ap.hit(signInPath) != 2 {
				t.Fatalf("token %v, %d sign-ins: want a new token at 4/5 of the lifetime", err, e.ap.hit(signInPath))
			}
			if err := e.listProjects(t); err != nil {
				t.Error(err)
			}
		})
	}
}

// When renewing an aging token fails, the old one (still valid) is used, and renewal is
// retried after the backoff, not on every request; an expired one is not used.
func TestAgingTokenServesWhileRenewalFails(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{MinBackoff: time.Minute}, apiclient.Config{})
	first, _ := e.token(t)
	e.clock.Advance(6 * 24 * time.Hour)
	e.ap.set(func(f *fakeAP) {
		f.signInAnswer = func() (int, string, http.Header) { return 503, `{"statusCode":503,"error":"Service Unavailable"}`, nil }
	})
	for range 3 {
		if tok, err := e.token(t); tok != first || err != nil {
			t.Fatalf("token %v: want the aging one while renewal fails", err)
		}
	}
	if n := e.ap.hit(signInPath); n != 2 {
		t.Errorf("%d sign-ins, want 2 (one renewal attempt, then the backoff)", n)
	}
	e.clock.Advance(24 * time.Hour) // expired
	if _, err := e.token(t); !errors.Is(err, apiclient.ErrSignIn) || !errors.Is(err, apiclient.ErrServer) {
		t.Errorf("expired token, server down: err = %v", err)
	}
	if got := e.results.list(); !slices.Equal(got, []string{"success", "error", "error"}) {
		t.Errorf("results %q", got)
	}
}

// A token without a readable lifetime (not a JWT) is used until the server rejects it.
func TestOpaqueTokenIsKeptUntilRejected(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{})
	e.ap.set(func(f *fakeAP) { f.opaque = true })
	first, _ := e.token(t)
	e.clock.Advance(365 * 24 * time.Hour)
	if tok, _ := e.token(t); tok != first || e.ap.hit(signInPath) != 1 {
		t.Errorf("an opaque token was renewed")
	}
	if s, _ := e.signIn.Session(); !s.Expires.IsZero() {
		t.Errorf("expiry %v of an opaque token", s.Expires)
	}
}

// A token the server rejects (INVALID_BEARER_TOKEN: new AP_JWT_SECRET; SESSION_EXPIRED: new
// password) makes the client sign in at once, once, and send the request once more.
func TestRejectedTokenSignsInAgainAndRetriesOnce(t *testing.T) {
	for _, code := range []string{"INVALID_BEARER_TOKEN", "SESSION_EXPIRED"} {
		t.Run(code, func(t *testing.T) {
			e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{Retries: 3})
			if err := e.listProjects(t); err != nil {
				t.Fatal(err)
			}
			e.ap.reject(code)
			if err := e.listProjects(t); err != nil {
				t.Fatalf("err = %v, want success after signing in again", err)
			}
			if s, p := e.ap.hit(signInPath), e.ap.hit(projectsPath); s != 2 || p != 3 {
				t.Errorf("%d sign-ins, %d project requests; want 2 and 3 (1 + rejected + retry)", s, p)
			}
		})
	}
}

// A request whose retry with a fresh token is rejected too fails with the server's error; the
// source then does not sign in again before the backoff (no sign-in per request).
func TestSecondRejectionFails(t *testing.T) {
	for _, code := range []string{"INVALID_BEARER_TOKEN", "SESSION_EXPIRED"} {
		t.Run(code, func(t *testing.T) {
			e := newSignInEnv(t, apiclient.SignInConfig{MinBackoff: time.Minute}, apiclient.Config{Retries: 3})
			e.ap.set(func(f *fakeAP) { f.rejectAll = code })
			err := e.listProjects(t)
			var apiErr *apiclient.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != code {
				t.Fatalf("err = %v, want the server's %s", err, code)
			}
			if s, p := e.ap.hit(signInPath), e.ap.hit(projectsPath); s != 2 || p != 2 {
				t.Errorf("%d sign-ins, %d project requests; want 2 and 2", s, p)
			}
			err = e.listProjects(t)
			if !errors.Is(err, apiclient.ErrTokenRejected) || !errors.Is(err, apiclient.ErrSignIn) || e.ap.hit(signInPath) != 2 || e.ap.hit(projectsPath) != 2 {
				t.Errorf("next request: err = %v after %d sign-ins; want ErrTokenRejected without contacting the server", err, e.ap.hit(signInPath))
			}
			e.ap.set(func(f *fakeAP) { f.rejectAll = "" })
			e.clock.Advance(time.Minute)
			if err := e.listProjects(t); err != nil || e.ap.hit(signInPath) != 3 {
				t.Errorf("after the backoff: %v, %d sign-ins", err, e.ap.hit(signInPath))
			}
		})
	}
}

// Wrong credentials: an error naming the email and the fix, not the password; no new attempt
// before a backoff that doubles from MinBackoff and is capped at MaxBackoff (10 min).
func TestSignInBackoffDoublesUpToTheCap(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{MinBackoff: 30 * time.Second}, apiclient.Config{})
	e.setPW("wrong-password-1")
	waits := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	for i, wait := range waits {
		_, err := e.token(t)
		if n := e.ap.hit(signInPath); n != i+1 {
			t.Fatalf("attempt %d: %d sign-ins", i+1, n)
		}
		if !errors.Is(err, apiclient.ErrInvalidCredentials) || !errors.Is(err, apiclient.ErrSignIn) || !errors.Is(err, apiclient.ErrAuthentication) {
			t.Fatalf("err = %v", err)
		}
		want := fmt.Sprintf("sign-in as %s failed: wrong email or password (INVALID_CREDENTIALS): %s (next attempt in %s)", testEmail, testHint, wait)
		if err.Error() != want {
			t.Errorf("error %q\nwant  %q", err, want)
		}
		e.clock.Advance(wait - time.Second)
		_, err2 := e.token(t)
		if e.ap.hit(signInPath) != i+1 || err2 != err {
			t.Fatalf("attempt %d: the server was contacted during the backoff (%d sign-ins) or another error: %v", i+1, e.ap.hit(signInPath), err2)
		}
		if err := e.listProjects(t); !errors.Is(err, apiclient.ErrInvalidCredentials) || e.ap.hit(projectsPath) != 0 {
			t.Fatalf("a request during the backoff: %v, %d sent", err, e.ap.hit(projectsPath))
		}
		e.clock.Advance(time.Second)
	}
	if got := e.results.list(); len(got) != len(waits) || got[0] != apiclient.SignInInvalidCredentials {
		t.Errorf("results %q", got)
	}
	e.setPW(testPassword) // fixed: tried at once, and the backoff starts over after
	if _, err := e.token(t); err != nil {
		t.Fatal(err)
	}
}

// A password that differs from the one that failed is tried at once, during the backoff.
func TestSignInRetriesAtOnceWhenThePasswordChanges(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{MinBackoff: time.Hour}, apiclient.Config{})
	e.setPW("wrong-password-1")
	if _, err := e.token(t); !errors.Is(err, apiclient.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	_, _ = e.token(t)
	if n := e.ap.hit(signInPath); n != 1 {
		t.Fatalf("%d sign-ins with the same wrong password", n)
	}
	e.setPW("wrong-password-2")
	if _, err := e.token(t); !errors.Is(err, apiclient.ErrInvalidCredentials) || e.ap.hit(signInPath) != 2 {
		t.Fatalf("another wrong password was not tried at once: %v", err)
	}
	e.setPW(testPassword)
	if _, err := e.token(t); err != nil || e.ap.hit(signInPath) != 3 {
		t.Fatalf("the right password was not tried at once: %v", err)
	}
}

// A 429 on sign-in: no attempt before Retry-After has passed, even with another password.
func TestSignInHonoursRetryAfter(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{MinBackoff: 30 * time.Second}, apiclient.Config{})
	e.ap.set(func(f *fakeAP) {
		f.signInAnswer = func() (int, string, http.Header) {
			f.signInAnswer = nil
			return 429, `{"statusCode":429,"error":"Too Many Requests","message":"Rate limit exceeded, retry in 1 minute"}`,
				http.Header{"Retry-After": {"120"}, "X-Ratelimit-Remaining": {"0"}}
		}
	})
	_, err := e.token(t)
	if !errors.Is(err, apiclient.ErrRateLimited) || !errors.Is(err, apiclient.ErrSignIn) || !strings.Contains(err.Error(), "next attempt in 2m0s") {
		t.Fatalf("err = %v", err)
	}
	e.clock.Advance(119 * time.Second)
	e.setPW("another-password")
	if _, err := e.token(t); !errors.Is(err, apiclient.ErrRateLimited) || e.ap.hit(signInPath) != 1 {
		t.Fatalf("signed in before Retry-After: %v, %d sign-ins", err, e.ap.hit(signInPath))
	}
	e.setPW(testPassword)
	e.clock.Advance(time.Second)
	if _, err := e.token(t); err != nil || e.ap.hit(signInPath) != 2 {
		t.Fatalf("after Retry-After: %v, %d sign-ins", err, e.ap.hit(signInPath))
	}
	if got := e.results.list(); !slices.Equal(got, []string{"rate_limited", "success"}) {
		t.Errorf("results %q", got)
	}
}

// Every way a sign-in fails gives an error naming the email and the fix, matchable, counted
// under its result, and free of the password and of any token.
func TestSignInFailuresNameTheFix(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
		kind   error
		result string
		text   string
	}{
		"wrong password": {401, `{"code":"INVALID_CREDENTIALS","params":null}`, apiclient.ErrInvalidCredentials, "invalid_credentials", testHint},
		"inactive":       {403, `{"code":"USER_IS_INACTIVE","params":{"email":"` + testEmail + `"}}`, apiclient.ErrUserInactive, "inactive", "USER_IS_INACTIVE"},
		"unverified":     {403, `{"code":"EMAIL_IS_NOT_VERIFIED","params":{"email":"` + testEmail + `"}}`, apiclient.ErrEmailNotVerified, "unverified", "EMAIL_IS_NOT_VERIFIED"},
		"mfa": {200, `{"mfaRequired":true,"mfaToken":"mfa-secret-token"}`, apiclient.ErrMFARequired, "mfa_required",
			"the exporter needs a user without a second factor"},
		"bad body":     {400, `{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/password ` + testPassword + ` Too small"}`, apiclient.ErrInvalidCredentials, "invalid_credentials", "8 to 64 characters"},
		"server error": {500, `{"statusCode":500,"code":"ERR_X","error":"Internal Server Error","message":"boom ` + testPassword + `"}`, apiclient.ErrServer, "error", "HTTP 500"},
		"no token":     {200, `{"email":"` + testEmail + `","token":null}`, apiclient.ErrBadResponse, "error", "no usable token"},
		"not json":     {200, `<html>` + testPassword + `</html>`, apiclient.ErrBadResponse, "error", "malformed response"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{})
			e.ap.set(func(f *fakeAP) {
				f.signInAnswer = func() (int, string, http.Header) { return tc.status, tc.body, nil }
			})
			err := e.listProjects(t)
			if !errors.Is(err, tc.kind) || !errors.Is(err, apiclient.ErrSignIn) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			for _, want := range []string{"sign-in as " + testEmail + " failed", tc.text} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			assertNoSecret(t, err.Error(), testPassword, "mfa-secret-token")
			if got := e.results.list(); !slices.Equal(got, []string{tc.result}) {
				t.Errorf("results %q, want %q", got, tc.result)
			}
			if e.ap.hit(projectsPath) != 0 {
				t.Error("a request was sent without a token")
			}
		})
	}
}

func assertNoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("a secret is in %q", s)
		}
	}
}

// Neither the password nor a token is ever in an error, whatever the server echoes, nor in the
// printed SignIn or Session.
func TestSecretsNeverInErrors(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{Timeout: 200 * time.Millisecond}, apiclient.Config{})
	tok, err := e.token(t)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	// The server echoes the token in a rejection, twice.
	e.ap.set(func(f *fakeAP) { f.rejectAll = "INVALID_BEARER_TOKEN" })
	errs = append(errs, e.listProjects(t))
	e.ap.set(func(f *fakeAP) { f.rejectAll = "" })
	sess, _ := e.signIn.Session()
	printed := fmt.Sprintf("%v %+v %#v %v %+v", e.signIn, e.signIn, e.signIn, e.client, sess)
	assertNoSecret(t, printed, tok, testPassword)

	// A sign-in that times out, then one to a server that is gone.
	e2 := newSignInEnv(t, apiclient.SignInConfig{Timeout: 100 * time.Millisecond, MinBackoff: time.Millisecond}, apiclient.Config{})
	gate := make(chan struct{})
	e2.ap.set(func(f *fakeAP) { f.gate = gate })
	errs = append(errs, e2.listProjects(t))
	close(gate)
	e2.clock.Advance(time.Second)
	e2.ap.srv.Close()
	errs = append(errs, e2.listProjects(t))
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		assertNoSecret(t, err.Error(), tok, testPassword)
		assertNoSecret(t, fmt.Sprintf("%+v %#v", err, err), testPassword)
	}
	if !errors.Is(errs[1], context.DeadlineExceeded) {
		t.Errorf("the sign-in timeout: %v", errs[1])
	}
}

// A server that echoes the token and the password in error bodies sees them redacted.
func TestEchoedSecretsAreRedacted(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{})
	tok, _ := e.token(t)
	e.ap.set(func(f *fakeAP) {
		f.override = func(w http.ResponseWriter, r *http.Request) {
			reply(w, 400, `{"code":"`+tok+`","params":{"message":"bad token `+tok+` for `+testPassword+`"}}`)
		}
	})
	err := e.listProjects(t)
	if err == nil || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("err = %v", err)
	}
	assertNoSecret(t, err.Error(), tok)
	e.clock.Advance(8 * 24 * time.Hour) // sign in again: the password is echoed
	err = e.listProjects(t)
	if err == nil || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("err = %v", err)
	}
	assertNoSecret(t, err.Error(), tok, testPassword)
}

// Concurrent callers needing a token share one sign-in, successful or not.
func TestConcurrentTokenCallsShareOneSignIn(t *testing.T) {
	for _, pw := range []string{testPassword, "wrong-password-1"} {
		e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{})
		e.setPW(pw)
		gate := make(chan struct{})
		e.ap.set(func(f *fakeAP) { f.gate = gate })
		var wg sync.WaitGroup
		toks := make([]string, 50)
		errs := make([]error, 50)
		for i := range toks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					toks[i], errs[i] = e.token(t)
				} else {
					errs[i] = e.listProjects(t)
				}
			}()
		}
		time.Sleep(50 * time.Millisecond) // let them all queue behind the first sign-in
		close(gate)
		wg.Wait()
		if n := e.ap.hit(signInPath); n != 1 {
			t.Errorf("password %q: %d sign-ins for 50 concurrent callers, want 1", pw, n)
		}
		for i := range toks {
			if pw == testPassword && (errs[i] != nil || i%2 == 0 && toks[i] != toks[0]) {
				t.Errorf("caller %d: %q, %v", i, toks[i], errs[i])
			}
			if pw != testPassword && !errors.Is(errs[i], apiclient.ErrInvalidCredentials) {
				t.Errorf("caller %d: %v", i, errs[i])
			}
		}
	}
}

// A caller whose context ends while another signs in gives up; the sign-in goes on for the rest.
func TestTokenWaitHonoursTheContext(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{})
	gate := make(chan struct{})
	e.ap.set(func(f *fakeAP) { f.gate = gate })
	done := make(chan error)
	go func() { _, err := e.token(t); done <- err }()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.signIn.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// Exactly one of APIKey and Auth; a SignIn serves one client and must be given to one.
func TestCredentialsConfig(t *testing.T) {
	s, err := apiclient.NewSignIn(apiclient.SignInConfig{Email: testEmail, Password: func() (string, error) { return testPassword, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "Config.Auth") {
		t.Errorf("unbound Token: %v", err)
	}
	key := func() string { return "k" }
	if _, err := apiclient.New(apiclient.Config{BaseURL: "http://x/api", APIKey: key, Auth: s}); err == nil {
		t.Error("both APIKey and Auth accepted")
	}
	if _, err := apiclient.New(apiclient.Config{BaseURL: "http://x/api", Auth: s}); err != nil {
		t.Fatal(err)
	}
	if _, err := apiclient.New(apiclient.Config{BaseURL: "http://y/api", Auth: s}); err == nil {
		t.Error("a SignIn was bound to a second client")
	}
	for _, bad := range []apiclient.SignInConfig{{Password: func() (string, error) { return "", nil }}, {Email: testEmail}} {
		if _, err := apiclient.NewSignIn(bad); err == nil {
			t.Errorf("NewSignIn(%+v) accepted", bad)
		}
	}
	// A password source that fails is reported, without contacting the server.
	e := newSignInEnv(t, apiclient.SignInConfig{Password: func() (string, error) {
		return "", errors.New("open /run/secrets/ap-password: permission denied")
	}}, apiclient.Config{})
	if _, err := e.token(t); err == nil || !strings.Contains(err.Error(), "reading the password: open /run/secrets") || e.ap.hit(signInPath) != 0 {
		t.Errorf("err = %v", err)
	}
	if got := apiclient.SignInResults(); len(got) != 7 || !slices.Contains(got, "mfa_required") {
		t.Errorf("SignInResults = %q", got)
	}
}
