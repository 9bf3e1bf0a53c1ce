package apiclient

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenSource supplies the bearer token of a Client that does not send a static API key
// (Config.Auth). It must be safe for concurrent use.
type TokenSource interface {
	// Token returns the token for the next attempt ("" sends none). It is called before every
	// attempt of every request that is not public, so it must be cheap while it has a token.
	Token(ctx context.Context) (string, error)
	// Rejected tells the source that the server refused token with code INVALID_BEARER_TOKEN
	// (401) or SESSION_EXPIRED (403). The Client then calls Token again and sends the request
	// once more; a second rejection is returned to the caller.
	Rejected(token, code string)
}

// clientBinder is a TokenSource that talks to the API through the Client it is given to.
type clientBinder interface{ bindClient(c *Client) error }

// Results passed to SignInConfig.Observer, one per sign-in attempt (bounded: safe as metric
// label values).
const (
	SignInSuccess            = "success"
	SignInInvalidCredentials = "invalid_credentials" // 401 INVALID_CREDENTIALS, or a 400 on the email or password
	SignInInactive           = "inactive"            // 403 USER_IS_INACTIVE
	SignInUnverified         = "unverified"          // 403 EMAIL_IS_NOT_VERIFIED
	SignInMFARequired        = "mfa_required"        // the user has a second factor
	SignInRateLimited        = "rate_limited"        // 429
	SignInFailed             = "error"               // no answer, 5xx, a malformed answer, …
)

// SignInResults lists every result SignInConfig.Observer may be told, to initialise counters.
func SignInResults() []string {
	return []string{SignInSuccess, SignInInvalidCredentials, SignInInactive, SignInUnverified,
		SignInMFARequired, SignInRateLimited, SignInFailed}
}

// Sign-in errors, for errors.Is on a *SignInError (and on the errors of requests that needed
// the token). Every sign-in error matches ErrSignIn; a 429 also matches ErrRateLimited, a 5xx
// ErrServer.
var (
	ErrSignIn             = errors.New("sign-in failed")
	ErrInvalidCredentials = errors.New("wrong email or password")
	ErrUserInactive       = errors.New("user is inactive")
	ErrEmailNotVerified   = errors.New("email address not verified")
	ErrMFARequired        = errors.New("user has two-factor authentication")
	// ErrTokenRejected: the server rejected a token it had just issued, in place of a rejected one.
	ErrTokenRejected = errors.New("freshly issued token rejected")
)

// SignInError is a failed sign-in. It never carries the password or a token.
type SignInError struct {
	Email  string
	Result string // the attempt's result (SignInInvalidCredentials, …); "" when no attempt was made
	// Detail says what happened and what to do about it.
	Detail string
	// Wait is how long the SignIn makes no new attempt (0: not a failure it backs off from).
	Wait time.Duration
	kind error
	err  error
}

func (e *SignInError) Error() string {
	msg := "sign-in as " + e.Email + " failed: " + e.Detail
	if e.Wait > 0 {
		msg += fmt.Sprintf(" (next attempt in %s)", e.Wait)
	}
	return msg
}

// Is matches ErrSignIn and the error's kind (ErrInvalidCredentials, …).
func (e *SignInError) Is(target error) bool {
	return target == ErrSignIn || e.kind != nil && target == e.kind
}

// Unwrap returns the cause: the server's *APIError, a network error, …
func (e *SignInError) Unwrap() error { return e.err }

// SignInConfig configures a SignIn.
type SignInConfig struct {
	// Email of the user, e.g. a dedicated platform ADMIN without a second factor.
	Email string
	// Password returns the user's password. It is called for each sign-in, and while a failed
	// sign-in is backed off from, so that a changed password (a re-read file) is tried at once.
	// Its error is quoted in the sign-in error: it must not carry the password.
	Password func() (string, error)
	// Timeout bounds one sign-in request (default DefaultTimeout).
	Timeout time.Duration
	// MinBackoff is the wait after a first failed sign-in, doubling with each further failure
	// up to MaxBackoff (defaults DefaultSignInMinBackoff and DefaultSignInMaxBackoff). Pass the
	// poll interval: retrying sooner cannot help, and the server's sign-in rate limit is per IP,
	// shared with the people signing in from there.
	MinBackoff, MaxBackoff time.Duration
	// CredentialsHint is what a wrong email or password error tells the operator to check, e.g.
	// "check ACTIVEPIECES_EMAIL and the password file" (default "check the email and the password").
	CredentialsHint string
	// Observer, if set, is told the result of every sign-in attempt (see SignInResults).
	Observer func(result string)
}

// Defaults of SignInConfig.
const (
	DefaultSignInMinBackoff = 30 * time.Second
	DefaultSignInMaxBackoff = 10 * time.Minute
	// maxSignInRetryAfter caps a sign-in Retry-After (the server's window is a minute): a proxy's
	// absurd value cannot stop the exporter signing in for longer than this.
	maxSignInRetryAfter = time.Hour
)

// Session is what the server told about the signed-in user (never the token).
type Session struct {
	UserID       string
	Email        string
	PlatformID   string
	PlatformRole string // ADMIN, MEMBER, OPERATOR
	// ProjectID is the user's default project; "" when the server sent null.
	ProjectID string
	// SignedIn is when the token was received (the Client's clock); Expires when it runs out,
	// estimated from the token's lifetime exp − iat (zero when the token does not tell).
	SignedIn, Expires time.Time
}

// SignIn is a TokenSource that signs in as a user (POST /v1/authentication/sign-in) and keeps
// the session token in memory only. Pass it as Config.Auth of one Client, through which it
// signs in (same HTTP client, redirect policy, User-Agent and Clock). It signs in again before
// use when less than a fifth of the token's lifetime is left, and at once (once) when the
// server rejects the token. A failed sign-in is not repeated before a backoff has passed.
// Concurrent callers share one sign-in.
type SignIn struct {
	cfg SignInConfig
	sem chan struct{} // one sign-in at a time

	mu             sync.Mutex
	client         *Client
	tok            signedToken
	session        Session
	signedIn       bool
	fail           signInFailure
	afterRejection bool   // the next token replaces one the server rejected
	rejectedToken  string // the latest token rejected, redacted from sign-in errors too
}

type signedToken struct {
	value              string
	signedIn           time.Time
	refreshAt, expires time.Time // zero: lifetime unknown
	replacement        bool      // signed in because the server rejected the previous token
	passwordHash       [sha256.Size]byte
}

type signInFailure struct {
	err          *SignInError // nil: none
	until        time.Time
	failures     int
	passwordHash [sha256.Size]byte
	rateLimited  bool
}

// NewSignIn checks cfg and returns a SignIn to pass as Config.Auth.
func NewSignIn(cfg SignInConfig) (*SignIn, error) {
	cfg.Email = strings.TrimSpace(cfg.Email)
	if cfg.Email == "" {
		return nil, errors.New("apiclient: sign-in: no email")
	}
	if cfg.Password == nil {
		return nil, errors.New("apiclient: sign-in: no password source")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultSignInMaxBackoff
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultSignInMinBackoff
	}
	cfg.MinBackoff = min(cfg.MinBackoff, cfg.MaxBackoff)
	if cfg.CredentialsHint == "" {
		cfg.CredentialsHint = "check the email and the password"
	}
	return &SignIn{cfg: cfg, sem: make(chan struct{}, 1)}, nil
}

func (s *SignIn) bindClient(c *Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil && s.client != c {
		return errors.New("apiclient: a SignIn already serves another Client")
	}
	s.client = c
	return nil
}

// String names the SignIn by its email: printing it never shows the token.
func (s *SignIn) String() string { return "apiclient.SignIn(" + s.cfg.Email + ")" }

// GoString is String, for %#v.
func (s *SignIn) GoString() string { return s.String() }

// Session returns the latest successful sign-in's session, and whether there was one.
func (s *SignIn) Session() (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session, s.signedIn
}

type tokenState int

const (
	tokenMissing tokenState = iota // none, rejected or expired: sign in before use
	tokenAging                     // less than a fifth of its lifetime left: sign in again if possible
	tokenFresh
)

func (t *signedToken) state(now time.Time) tokenState {
	switch {
	case t.value == "", !t.expires.IsZero() && !now.Before(t.expires):
		return tokenMissing
	case !t.refreshAt.IsZero() && !now.Before(t.refreshAt):
		return tokenAging
	}
	return tokenFresh
}

// Token returns the session token, signing in first when there is none or it is aging.
func (s *SignIn) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	c := s.client
	var tok string
	st := tokenMissing
	if c != nil {
		tok, st = s.tok.value, s.tok.state(c.cfg.Clock.Now())
	}
	s.mu.Unlock()
	if c == nil {
		return "", errors.New("apiclient: the SignIn was not passed to apiclient.New as Config.Auth")
	}
	if st == tokenFresh {
		return tok, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("sign-in as %s: waiting for the sign-in under way: %w", s.cfg.Email, ctx.Err())
	}
	defer func() { <-s.sem }()
	return s.renew(ctx, c)
}

// renew signs in unless another caller just did or a failure's backoff has not passed; it holds
// the sign-in semaphore.
func (s *SignIn) renew(ctx context.Context, c *Client) (string, error) {
	s.mu.Lock()
	now := c.cfg.Clock.Now()
	tok, st, fail, rejected := s.tok.value, s.tok.state(now), s.fail, s.rejectedToken
	s.mu.Unlock()
	if st == tokenFresh { // signed in by the caller this one waited for
		return tok, nil
	}
	backingOff := fail.err != nil && now.Before(fail.until)
	if backingOff && (st == tokenAging || fail.rateLimited) {
		return keep(tok, st, fail.err)
	}
	pw, err := s.cfg.Password()
	if err != nil || pw == "" {
		detail := "the password is empty"
		if err != nil {
			detail = "reading the password: " + err.Error()
		}
		return keep(tok, st, &SignInError{Email: s.cfg.Email, Detail: detail, err: err})
	}
	hash := sha256.Sum256([]byte(pw))
	if backingOff && hash == fail.passwordHash {
		return "", fail.err
	}
	// The old tokens are no longer usable, but still nobody's business.
	ans, err := c.signIn(ctx, s.cfg.Email, s.cfg.Timeout, pw, tok, rejected)
	return s.record(ctx, c, ans, err, hash, tok, st)
}

// keep returns an aging token, still valid, when a new one cannot be had; else err.
func keep(tok string, st tokenState, err *SignInError) (string, error) {
	if st == tokenAging {
		return tok, nil
	}
	return "", err
}

// record keeps the outcome of a sign-in attempt and tells the observer.
func (s *SignIn) record(ctx context.Context, c *Client, ans signInAnswer, err error, hash [sha256.Size]byte, old string, st tokenState) (string, error) {
	now := c.cfg.Clock.Now()
	if err == nil && !ans.MFARequired && ans.Token == "" {
		err = fmt.Errorf("%s: %w: the answer carries no usable token", EndpointSignIn, ErrBadResponse)
	}
	if err == nil && !ans.MFARequired {
		s.mu.Lock()
		s.succeedLocked(now, ans, hash)
		s.mu.Unlock()
		s.observe(SignInSuccess)
		return ans.Token, nil
	}
	e, retryAfter := s.classify(err, ans.MFARequired)
	s.observe(e.Result)
	if ctx.Err() != nil { // the caller gave up: no fault of the server's, no backoff
		return keep(old, st, e)
	}
	s.mu.Lock()
	s.failLocked(now, e, hash, retryAfter)
	s.mu.Unlock()
	return keep(old, st, e)
}

func (s *SignIn) observe(result string) {
	if s.cfg.Observer != nil {
		s.cfg.Observer(result)
	}
}

func (s *SignIn) succeedLocked(now time.Time, a signInAnswer, hash [sha256.Size]byte) {
	t := signedToken{value: a.Token, signedIn: now, replacement: s.afterRejection, passwordHash: hash}
	if life, ok := tokenLifetime(a.Token, now); ok {
		t.expires = now.Add(life)
		t.refreshAt = now.Add(life - life/5)
	}
	s.tok, s.afterRejection, s.fail = t, false, signInFailure{}
	s.session = Session{UserID: a.UserID, Email: a.Email, PlatformID: a.PlatformID, PlatformRole: a.PlatformRole,
		ProjectID: a.ProjectID, SignedIn: now, Expires: t.expires}
	s.signedIn = true
}

// failLocked starts the backoff after a failure: MinBackoff doubling per consecutive failure up
// to MaxBackoff, and never shorter than the server's Retry-After on a 429.
func (s *SignIn) failLocked(now time.Time, e *SignInError, hash [sha256.Size]byte, retryAfter time.Duration) {
	n := s.fail.failures + 1
	wait := s.cfg.MinBackoff
	for i := 1; i < n && wait < s.cfg.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, s.cfg.MaxBackoff)
	rateLimited := e.Result == SignInRateLimited
	if rateLimited {
		wait = max(wait, min(retryAfter, maxSignInRetryAfter))
	}
	e.Wait = wait
	s.fail = signInFailure{err: e, until: now.Add(wait), failures: n, passwordHash: hash, rateLimited: rateLimited}
}

// classify turns a failed attempt into a *SignInError naming the fix, and the server's
// Retry-After for a 429.
func (s *SignIn) classify(err error, mfa bool) (*SignInError, time.Duration) {
	e := &SignInError{Email: s.cfg.Email, Result: SignInFailed, err: err}
	if mfa {
		e.Result, e.kind = SignInMFARequired, ErrMFARequired
		e.Detail = "the user has two-factor authentication (mfaRequired): the exporter needs a user without a second factor, e.g. a dedicated platform admin"
		return e, 0
	}
	e.Detail = err.Error()
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return e, 0
	}
	switch status := apiErr.StatusCode; {
	case status == http.StatusUnauthorized && apiErr.Code == "INVALID_CREDENTIALS":
		e.Result, e.kind = SignInInvalidCredentials, ErrInvalidCredentials
		e.Detail = "wrong email or password (INVALID_CREDENTIALS): " + s.cfg.CredentialsHint
	case status == http.StatusBadRequest:
		e.Result, e.kind = SignInInvalidCredentials, ErrInvalidCredentials
		e.Detail = fmt.Sprintf("the server refused the email or password as malformed (%s %s; a password has 8 to 64 characters): %s",
			apiErr.Code, apiErr.Message, s.cfg.CredentialsHint)
	case status == http.StatusForbidden && apiErr.Code == "USER_IS_INACTIVE":
		e.Result, e.kind = SignInInactive, ErrUserInactive
		e.Detail = "the user is deactivated (USER_IS_INACTIVE): activate it again in the platform's user management, or sign in as another user"
	case status == http.StatusForbidden && apiErr.Code == "EMAIL_IS_NOT_VERIFIED":
		e.Result, e.kind = SignInUnverified, ErrEmailNotVerified
		e.Detail = "the user's email address is not verified (EMAIL_IS_NOT_VERIFIED): verify it, or sign in as a verified user"
	case status == http.StatusTooManyRequests:
		e.Result = SignInRateLimited
		e.Detail = "rate limited by the server (HTTP 429; its sign-in limit is per client IP)"
		return e, apiErr.RetryAfter
	}
	return e, 0
}

// Rejected tells the SignIn the server refused token: the next Token signs in at once. When the
// token was itself just signed in for a rejected one, the server is refusing the tokens it
// issues, and signing in again backs off as after a failed sign-in.
func (s *SignIn) Rejected(token, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token == "" || token != s.tok.value || s.client == nil {
		return // an older token, already replaced
	}
	now := s.client.cfg.Clock.Now()
	t := s.tok
	s.tok, s.afterRejection, s.rejectedToken = signedToken{}, true, t.value
	if t.replacement && now.Sub(t.signedIn) < s.cfg.MinBackoff {
		e := &SignInError{Email: s.cfg.Email, kind: ErrTokenRejected, Detail: fmt.Sprintf(
			"the server rejected (%s) the token it had just issued in place of a rejected one: are several servers with different AP_JWT_SECRETs behind the URL?", code)}
		s.failLocked(now, e, t.passwordHash, 0)
	}
}

// tokenLifetime reads exp − iat from a JWT's payload (base64url JSON; the signature is not
// checked, and need not be). Without iat the token is taken as issued now.
func tokenLifetime(token string, now time.Time) (time.Duration, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return 0, false
	}
	var claims struct {
		Iat *float64 `json:"iat"`
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp == nil {
		return 0, false
	}
	iat := float64(now.Unix())
	if claims.Iat != nil {
		iat = *claims.Iat
	}
	secs := *claims.Exp - iat
	if math.IsNaN(secs) || secs <= 0 || secs > 10*366*24*3600 {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

// signInAnswer is the part of an AuthenticationResponse (or a second-factor challenge) used here.
type signInAnswer struct {
	Token, UserID, Email, PlatformID, PlatformRole, ProjectID string
	MFARequired                                               bool
}

// signIn sends one sign-in request: no retries (the SignIn backs off), no Authorization header,
// the password and any other secrets redacted from any error.
func (c *Client) signIn(ctx context.Context, email string, timeout time.Duration, password string, secrets ...string) (signInAnswer, error) {
	body, err := json.Marshal(struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}{email, password})
	if err != nil {
		return signInAnswer{}, fmt.Errorf("sign-in request: %w", err)
	}
	var a signInAnswer
	err = c.do(ctx, &request{endpoint: EndpointSignIn, method: http.MethodPost, path: "/v1/authentication/sign-in",
		body: body, public: true, once: true, timeout: timeout, secrets: append([]string{password}, secrets...),
		lim: c.valueLimits(64 << 10), decode: func(cr *capReader) error { return decodeSignIn(cr, &a) }})
	return a, err
}

// decodeSignIn reads a sign-in answer tolerantly: a field of another type reads as empty.
func decodeSignIn(cr *capReader, a *signInAnswer) error {
	var m map[string]json.RawMessage
	if err := decodeValue(cr, &m); err != nil {
		return err
	}
	var mfa bool
	_ = json.Unmarshal(m["mfaRequired"], &mfa)
	field := func(k string) string { return truncate(jsonString(m[k]), 200) }
	*a = signInAnswer{UserID: field("id"), Email: field("email"), PlatformID: field("platformId"),
		PlatformRole: field("platformRole"), ProjectID: field("projectId"), MFARequired: mfa}
	if tok := jsonString(m["token"]); validToken(tok) {
		a.Token = tok
	}
	return nil
}

// validToken: a token goes into a header, so only visible ASCII.
func validToken(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] < 0x21 || t[i] > 0x7e {
			return false
		}
	}
	return t != ""
}

// jsonString is a JSON string's value, "" for anything else.
func jsonString(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}
