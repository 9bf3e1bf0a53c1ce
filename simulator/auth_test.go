package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable simulator clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type answer struct {
	code   int
	header http.Header
	body   string // re-encoded with sorted keys
	json   map[string]any
}

func do(t *testing.T, s *Server, method, target, body, token string, hdr ...string) answer {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "RemoteAddr" {
			req.RemoteAddr = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	raw, _ := io.ReadAll(rec.Body)
	a := answer{code: rec.Code, header: rec.Header()}
	if err := json.Unmarshal(raw, &a.json); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, target, raw, err)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(a.json)
	a.body = strings.TrimSpace(b.String())
	return a
}

func signIn(t *testing.T, s *Server, email, password string) answer {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return do(t, s, http.MethodPost, SignInPath, string(b), "")
}

func mustToken(t *testing.T, s *Server, email, password string) string {
	t.Helper()
	a := signIn(t, s, email, password)
	tok, _ := a.json["token"].(string)
	if a.code != 200 || tok == "" {
		t.Fatalf("sign-in %s: %d %s", email, a.code, a.body)
	}
	return tok
}

func TestCommunityEditionHasNoAPIKeys(t *testing.T) {
	for _, ed := range []string{"", EditionEnterprise, EditionCloud, EditionCommunity} {
		s := New(Options{Edition: ed})
		p := s.AddProject("P")
		a := do(t, s, http.MethodGet, "/api/v1/flow-runs?projectId="+p, "", DefaultAPIKey)
		if ed != EditionCommunity && a.code != 200 {
			t.Errorf("%q: the API key is answered %d %s", ed, a.code, a.body)
		}
		if want := `{"code":"AUTHENTICATION","params":{"message":"invalid api key"}}`; ed == EditionCommunity && (a.code != 401 || a.body != want) {
			t.Errorf("community: %d %s, want 401 %s", a.code, a.body, want)
		}
	}
}

func TestSignInErrorsFollowAPIMD(t *testing.T) {
	s := New(Options{Edition: EditionCommunity})
	s.AddUser(UserSpec{Email: "ok@example.com", Password: "password-1"})
	s.AddUser(UserSpec{Email: "off@example.com", Password: "password-1", Status: UserInactive})
	s.AddUser(UserSpec{Email: "new@example.com", Password: "password-1", Unverified: true})
	for name, tc := range map[string]struct {
		body string
		code int
		want string
	}{
		"short password": {`{"email":"ok@example.com","password":"short"}`, 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/password Too small: expected string to have >=8 characters","statusCode":400}`},
		"long password": {`{"email":"ok@example.com","password":"` + strings.Repeat("x", 65) + `"}`, 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/password Too big: expected string to have <=64 characters","statusCode":400}`},
		"no email": {`{"password":"password-1"}`, 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/email Invalid input: expected string, received undefined","statusCode":400}`},
		"not an object": {`[1]`, 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body Invalid input: expected object, received array","statusCode":400}`},
		"not JSON": {`{`, 400,
			`{"code":"FST_ERR_CTP_INVALID_JSON_BODY","error":"Bad Request","message":"Body is not valid JSON but content-type is set to 'application/json'","statusCode":400}`},
		"unknown email":  {`{"email":"nobody@example.com","password":"password-1"}`, 401, `{"code":"INVALID_CREDENTIALS","params":null}`},
		"wrong password": {`{"email":"OK@example.com","password":"password-2"}`, 401, `{"code":"INVALID_CREDENTIALS","params":null}`},
		"inactive":       {`{"email":"off@example.com","password":"password-1"}`, 403, `{"code":"USER_IS_INACTIVE","params":{"email":"off@example.com"}}`},
		"unverified":     {`{"email":"new@example.com","password":"password-1"}`, 403, `{"code":"EMAIL_IS_NOT_VERIFIED","params":{"email":"new@example.com"}}`},
	} {
		a := do(t, s, http.MethodPost, SignInPath, tc.body, "")
		if a.code != tc.code || a.body != tc.want {
			t.Errorf("%s: %d %s\nwant %d %s", name, a.code, a.body, tc.code, tc.want)
		}
	}
	if a := do(t, s, http.MethodGet, SignInPath, "", ""); a.code != 404 {
		t.Errorf("GET sign-in: %d, want 404", a.code)
	}
	if n := s.SignIns(); n != 0 {
		t.Errorf("SignIns = %d after failures only", n)
	}
}

func TestSignInAnswersAndSignsAJWT(t *testing.T) {
	c := newClock()
	s := New(Options{Edition: EditionCommunity, Now: c.Now, TokenLifetime: 48 * time.Hour})
	p := s.AddProject("P")
	id := s.AddUser(UserSpec{Email: "admin@example.com", Password: "password-1", PlatformRole: RoleAdmin, FirstName: "A"})
	a := signIn(t, s, "admin@example.com", "password-1")
	keys := []string{"email", "externalId", "firstName", "id", "lastName", "newsLetter", "platformId", "platformRole", "projectId", "status", "token", "trackEvents", "verified"}
	for _, k := range keys {
		if _, ok := a.json[k]; !ok {
			t.Errorf("answer lacks %s: %s", k, a.body)
		}
	}
	if len(a.json) != len(keys) || a.json["id"] != id || a.json["projectId"] != p || a.json["platformRole"] != RoleAdmin || a.json["status"] != UserActive || a.json["verified"] != true {
		t.Errorf("answer %s", a.body)
	}
	parts := strings.Split(a.json["token"].(string), ".")
	mac := hmac.New(sha256.New, s.auth.secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if len(parts) != 3 || base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != parts[2] {
		t.Fatalf("token is not an HS256 JWT signed with the server's secret")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(raw, &claims)
	if claims["id"] != id || claims["type"] != "USER" || claims["platform"].(map[string]any)["id"] != PlatformID ||
		claims["tokenVersion"] == "" || claims["iat"] != float64(c.Now().Unix()) || claims["exp"] != float64(c.Now().Add(48*time.Hour).Unix()) {
		t.Errorf("claims %s", raw)
	}
	if s.SignIns() != 1 {
		t.Errorf("SignIns = %d", s.SignIns())
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != SignInPath || len(reqs[0].Query) != 0 || reqs[0].Status != 200 {
		t.Errorf("request log %+v", reqs)
	}
	if got := do(t, s, http.MethodGet, "/api/v1/flow-runs?projectId="+p, "", a.json["token"].(string)); got.code != 200 {
		t.Errorf("reading with the token: %d %s", got.code, got.body)
	}
}

func TestTokenExpiresOnTheSimulatorClock(t *testing.T) {
	c := newClock()
	s := New(Options{Edition: EditionCommunity, Now: c.Now})
	p := s.AddProject("P")
	s.AddUser(UserSpec{Email: "u@example.com", Password: "password-1", Projects: []string{p}})
	tok := mustToken(t, s, "u@example.com", "password-1")
	target := "/api/v1/flow-runs/count-by-status?projectId=" + p
	c.Advance(7*24*time.Hour - time.Second)
	if a := do(t, s, http.MethodGet, target, "", tok); a.code != 200 {
		t.Fatalf("a second before expiry: %d %s", a.code, a.body)
	}
	c.Advance(time.Second)
	want := `{"code":"INVALID_BEARER_TOKEN","params":{"message":"invalid access token or session expired"}}`
	if a := do(t, s, http.MethodGet, target, "", tok); a.code != 401 || a.body != want {
		t.Errorf("expired: %d %s", a.code, a.body)
	}
	skewed := New(Options{Edition: EditionCommunity, Now: c.Now, ClockSkew: 3 * time.Hour})
	skewed.AddUser(UserSpec{Email: "u@example.com", Password: "password-1"})
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(skewed.IssueToken("u@example.com"), ".")[1])
	var claims struct{ Iat, Exp int64 }
	if json.Unmarshal(raw, &claims) != nil || claims.Iat != c.Now().Add(3*time.Hour).Unix() || claims.Exp-claims.Iat != 7*24*3600 {
		t.Errorf("a server 3h ahead: claims %s", raw)
	}
	forged := tok[:len(tok)-2] + "xx"
	s.RotateJWTSecret()
	fresh := mustToken(t, s, "u@example.com", "password-1")
	s.RotateJWTSecret()
	for name, tk := range map[string]string{"forged": forged, "old secret": fresh, "garbage": "abc"} {
		if a := do(t, s, http.MethodGet, target, "", tk); a.code != 401 || a.body != want {
			t.Errorf("%s: %d %s", name, a.code, a.body)
		}
	}
}

func TestSessionExpiresOnPasswordChangeAndDeactivation(t *testing.T) {
	s := New(Options{Edition: EditionCommunity})
	p := s.AddProject("P")
	s.AddUser(UserSpec{Email: "u@example.com", Password: "password-1", PlatformRole: RoleAdmin})
	target := "/api/v1/flows?projectId=" + p
	want := `{"code":"SESSION_EXPIRED","params":{"message":"The session has expired or the user is not verified."}}`
	tok := mustToken(t, s, "u@example.com", "password-1")
	s.SetUserPassword("u@example.com", "password-2")
	if a := do(t, s, http.MethodGet, target, "", tok); a.code != 403 || a.body != want {
		t.Errorf("after a password change: %d %s", a.code, a.body)
	}
	if a := signIn(t, s, "u@example.com", "password-1"); a.code != 401 {
		t.Errorf("old password: %d", a.code)
	}
	tok = mustToken(t, s, "u@example.com", "password-2")
	s.SetUserStatus("u@example.com", UserInactive)
	if a := do(t, s, http.MethodGet, target, "", tok); a.code != 403 || a.body != want {
		t.Errorf("after deactivation: %d %s", a.code, a.body)
	}
	s.SetUserStatus("u@example.com", UserActive)
	if a := do(t, s, http.MethodGet, target, "", tok); a.code != 200 {
		t.Errorf("reactivated: %d %s", a.code, a.body)
	}
	s.SetUserVerified("u@example.com", false)
	if a := do(t, s, http.MethodGet, target, "", tok); a.code != 403 || a.body != want {
		t.Errorf("unverified: %d %s", a.code, a.body)
	}
}

func TestMFAUserGetsAChallengeNotASession(t *testing.T) {
	s := New(Options{Edition: EditionCommunity})
	s.AddUser(UserSpec{Email: "mfa@example.com", Password: "password-1", PlatformRole: RoleAdmin, MFA: true})
	a := signIn(t, s, "mfa@example.com", "password-1")
	tok, _ := a.json["mfaToken"].(string)
	if a.code != 200 || a.json["mfaRequired"] != true || tok == "" || len(a.json) != 2 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	if b := do(t, s, http.MethodGet, "/api/v1/projects", "", tok); b.code != 403 || b.json["code"] != "AUTHORIZATION" {
		t.Errorf("the MFA token as a session: %d %s", b.code, b.body)
	}
	if s.SignIns() != 0 {
		t.Error("an MFA challenge counted as a sign-in")
	}
}

func TestMembersReadOnlyTheirProjects(t *testing.T) {
	s := New(Options{Edition: EditionCommunity})
	mine, other := s.AddProject("Mine"), s.AddProject("Other")
	f := s.AddFlow(other, "", "F")
	run := s.AddRun(RunSpec{FlowID: f})
	uid := s.AddUser(UserSpec{Email: "m@example.com", Password: "password-1", Projects: []string{mine}})
	s.AddUser(UserSpec{Email: "a@example.com", Password: "password-1", PlatformRole: RoleAdmin})
	member, admin := mustToken(t, s, "m@example.com", "password-1"), mustToken(t, s, "a@example.com", "password-1")
	if a := do(t, s, http.MethodGet, "/api/v1/flow-runs?projectId="+mine, "", member); a.code != 200 {
		t.Errorf("own project: %d %s", a.code, a.body)
	}
	want := `{"code":"AUTHORIZATION","params":{"message":"No role found for the user","projectId":"` + other + `","userId":"` + uid + `"}}`
	for _, target := range []string{"/api/v1/flow-runs?projectId=" + other, "/api/v1/folders?projectId=" + other, "/api/v1/flow-runs/" + run} {
		if a := do(t, s, http.MethodGet, target, "", member); a.code != 403 || a.body != want {
			t.Errorf("%s: %d %s\nwant 403 %s", target, a.code, a.body, want)
		}
		if a := do(t, s, http.MethodGet, target, "", admin); a.code != 200 {
			t.Errorf("admin %s: %d %s", target, a.code, a.body)
		}
	}
	if got := ids(do(t, s, http.MethodGet, "/api/v1/projects", "", member).json); len(got) != 1 || got[0] != mine {
		t.Errorf("member lists %v", got)
	}
	if got := ids(do(t, s, http.MethodGet, "/api/v1/projects", "", admin).json); len(got) != 2 {
		t.Errorf("admin lists %v", got)
	}
}

func TestProjectsRoutes(t *testing.T) {
	notFound := `{"error":"Not Found","message":"Route not found","statusCode":404}`
	s := New(Options{Edition: EditionCommunity, ProjectsRoute: "users"})
	mine := s.AddProject("Mine")
	s.AddProject("Other")
	s.AddUser(UserSpec{Email: "m@example.com", Password: "password-1", Projects: []string{mine}})
	tok := mustToken(t, s, "m@example.com", "password-1")
	if a := do(t, s, http.MethodGet, "/api/v1/projects", "", tok); a.code != 404 || a.body != notFound {
		t.Errorf("users route: /v1/projects %d %s", a.code, a.body)
	}
	a := do(t, s, http.MethodGet, "/api/v1/users/projects", "", tok)
	if got := ids(a.json); a.code != 200 || len(got) != 1 || got[0] != mine || a.json["next"] != nil || a.json["previous"] != nil {
		t.Errorf("users route: /v1/users/projects %d %s", a.code, a.body)
	}
	ee := New(Options{ProjectsRoute: "users"})
	ee.AddProject("P")
	if a := do(t, ee, http.MethodGet, "/api/v1/projects", "", DefaultAPIKey); a.code != 200 || len(ids(a.json)) != 1 {
		t.Errorf("ee, users route: the API key lists projects: %d %s", a.code, a.body)
	}
	if a := do(t, ee, http.MethodGet, "/api/v1/users/projects", "", DefaultAPIKey); a.code != 403 {
		t.Errorf("ee: /v1/users/projects with an API key: %d %s", a.code, a.body)
	}
	if a := do(t, New(Options{}), http.MethodGet, "/api/v1/users/projects", "", DefaultAPIKey); a.code != 404 || a.body != notFound {
		t.Errorf("projects route: /v1/users/projects %d %s", a.code, a.body)
	}
}

func TestAuthRoutesAreRateLimitedPerIP(t *testing.T) {
	c := newClock()
	s := New(Options{Edition: EditionCommunity, Now: c.Now, SignInRateLimit: 3})
	s.AddUser(UserSpec{Email: "u@example.com", Password: "password-1"})
	body := `{"email":"u@example.com","password":"wrong-password"}`
	for i := 0; i < 3; i++ {
		if a := do(t, s, http.MethodPost, SignInPath, body, ""); a.code != 401 || a.header.Get("x-ratelimit-remaining") != string(rune('2'-i)) {
			t.Fatalf("attempt %d: %d, remaining %q", i+1, a.code, a.header.Get("x-ratelimit-remaining"))
		}
	}
	c.Advance(15 * time.Second)
	a := do(t, s, http.MethodPost, SignInPath, `{"email":"u@example.com","password":"password-1"}`, "")
	want := `{"error":"Too Many Requests","message":"Rate limit exceeded, retry in 1 minute","statusCode":429}`
	h := a.header
	if a.code != 429 || a.body != want || h.Get("x-ratelimit-limit") != "3" || h.Get("x-ratelimit-remaining") != "0" ||
		h.Get("x-ratelimit-reset") != "45" || h.Get("retry-after") != "45" {
		t.Errorf("4th: %d %s %v", a.code, a.body, h)
	}
	if a := do(t, s, http.MethodPost, SignInPath, body, "", "RemoteAddr", "198.51.100.7:4000"); a.code != 401 {
		t.Errorf("another IP is limited too: %d", a.code)
	}
	if a := do(t, s, http.MethodGet, "/api/v1/flags", "", ""); a.code != 200 {
		t.Errorf("flags limited: %d", a.code)
	}
	c.Advance(45 * time.Second)
	if a := signIn(t, s, "u@example.com", "password-1"); a.code != 200 {
		t.Errorf("next window: %d %s", a.code, a.body)
	}
}

func TestSwitchPlatformRefreshesTheToken(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.Now})
	s.AddUser(UserSpec{Email: "u@example.com", Password: "password-1", PlatformRole: RoleAdmin})
	tok := mustToken(t, s, "u@example.com", "password-1")
	c.Advance(time.Hour)
	a := do(t, s, http.MethodPost, SwitchPlatformPath, `{"platformId":"`+PlatformID+`"}`, tok)
	if fresh, _ := a.json["token"].(string); a.code != 200 || fresh == "" || fresh == tok || a.header.Get("x-ratelimit-limit") != "50" {
		t.Errorf("switch-platform: %d %s", a.code, a.body)
	}
	if a := do(t, s, http.MethodPost, SwitchPlatformPath, `{"platformId":"AAAAAAAAAAAAAAAAAAAAA"}`, tok); a.code != 403 ||
		a.body != `{"code":"AUTHORIZATION","params":{"message":"The user is not a member of the platform"}}` {
		t.Errorf("another platform: %d %s", a.code, a.body)
	}
	if a := do(t, s, http.MethodPost, SwitchPlatformPath, `{"platformId":"`+PlatformID+`"}`, DefaultAPIKey); a.code != 403 {
		t.Errorf("API key: %d %s", a.code, a.body)
	}
	if a := do(t, s, http.MethodPost, SwitchPlatformPath, `{}`, ""); a.code != 400 {
		t.Errorf("no platformId, no token (validation first): %d %s", a.code, a.body)
	}
	if s.SignIns() != 1 {
		t.Errorf("SignIns = %d", s.SignIns())
	}
}

func TestFlags(t *testing.T) {
	a := do(t, New(Options{}), http.MethodGet, "/api/v1/flags", "", "")
	f := a.json
	if a.code != 200 || f["EDITION"] != "ee" || f["CURRENT_VERSION"] != DefaultVersion || f["LATEST_VERSION"] != DefaultVersion ||
		f["FLOW_RUN_TIME_SECONDS"] != float64(600) || f["PAUSED_FLOW_TIMEOUT_DAYS"] == nil || f["EXECUTION_DATA_RETENTION_DAYS"] == nil || f["THEME"] == nil {
		t.Errorf("default flags: %d %s", a.code, a.body)
	}
	s := New(Options{Edition: EditionCommunity, Version: "0.70.1", LatestVersion: "0.85.4", FlowRunTimeSeconds: 1200,
		OmitFlags: []string{"PAUSED_FLOW_TIMEOUT_DAYS"}, Flags: map[string]any{"EXECUTION_DATA_RETENTION_DAYS": 7}})
	f = do(t, s, http.MethodGet, "/api/v1/flags", "", "").json
	if _, ok := f["PAUSED_FLOW_TIMEOUT_DAYS"]; ok || f["EDITION"] != "ce" || f["CURRENT_VERSION"] != "0.70.1" || f["LATEST_VERSION"] != "0.85.4" ||
		f["FLOW_RUN_TIME_SECONDS"] != float64(1200) || f["EXECUTION_DATA_RETENTION_DAYS"] != float64(7) {
		t.Errorf("community flags: %v", f)
	}
	if f := do(t, New(Options{Edition: EditionCloud}), http.MethodGet, "/api/v1/flags", "", "").json; f["EDITION"] != "cloud" {
		t.Errorf("cloud: %v", f["EDITION"])
	}
	if a := do(t, New(Options{NoFlags: true}), http.MethodGet, "/api/v1/flags", "", ""); a.code != 404 {
		t.Errorf("NoFlags: %d", a.code)
	}
}

func TestRepeatLimit(t *testing.T) {
	s := New(Options{RepeatLimit: 20})
	p := s.AddProject("P")
	runIDs := func(n int, key string) string {
		q := url.Values{"projectId": {p}}
		for i := 0; i < n; i++ {
			q.Add(key, strings.Repeat("A", 20)+string(idChars[i]))
		}
		return "/api/v1/flow-runs?" + q.Encode()
	}
	if a := do(t, s, http.MethodGet, runIDs(20, "flowRunIds"), "", DefaultAPIKey); a.code != 200 {
		t.Errorf("20 ids: %d %s", a.code, a.body)
	}
	want := `{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/flowRunIds/0 Invalid input: expected string, received object","statusCode":400}`
	for _, key := range []string{"flowRunIds", "flowRunIds[]"} {
		if a := do(t, s, http.MethodGet, runIDs(21, key), "", ""); a.code != 400 || a.body != want {
			t.Errorf("21 %s without auth: %d %s", key, a.code, a.body)
		}
	}
	if a := do(t, New(Options{}), http.MethodGet, runIDs(60, "flowRunIds"), "", DefaultAPIKey); a.code != 404 {
		t.Errorf("no limit: 60 ids are validated as usual (unknown project 404): %d %s", a.code, a.body)
	}
}

// The demo runs as a Community Edition server a client signs in to.
func TestCommunityDemo(t *testing.T) {
	s, g := NewDemo(Options{Edition: EditionCommunity, Raw: true}, 20, 1)
	g.Step(time.Second)
	srv := httptest.NewServer(s)
	defer srv.Close()
	body, _ := json.Marshal(map[string]string{"email": DemoEmail, "password": DemoPassword})
	resp, err := http.Post(srv.URL+SignInPath, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var auth struct{ Token, ProjectID string }
	_ = json.NewDecoder(resp.Body).Decode(&auth)
	resp.Body.Close()
	if resp.StatusCode != 200 || auth.Token == "" || auth.ProjectID == "" {
		t.Fatalf("demo sign-in: %d %+v", resp.StatusCode, auth)
	}
	projects := do(t, s, http.MethodGet, "/api/v1/projects", "", auth.Token)
	runs := do(t, s, http.MethodGet, "/api/v1/flow-runs?limit=-1&projectId="+auth.ProjectID, "", auth.Token)
	if len(ids(projects.json)) != len(DemoProjects) || len(ids(runs.json)) == 0 {
		t.Errorf("demo as the admin: %d projects, %d runs", len(ids(projects.json)), len(ids(runs.json)))
	}
	if a := do(t, s, http.MethodGet, "/api/v1/projects", "", DefaultAPIKey); a.code != 401 {
		t.Errorf("community demo takes the API key: %d", a.code)
	}
	if first, again := s.AddDemoUser(), s.AddDemoUser(); first != again {
		t.Error("AddDemoUser is not idempotent")
	}
	ee, _ := NewDemo(Options{Raw: true}, 20, 1)
	if a := do(t, ee, http.MethodGet, "/api/v1/projects", "", DefaultAPIKey); a.code != 200 || len(ids(a.json)) != len(DemoProjects) {
		t.Errorf("default demo with the API key: %d %s", a.code, a.body)
	}
}
