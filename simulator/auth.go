package simulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Platform roles and user statuses, as UserSpec takes them.
const (
	RoleAdmin    = "ADMIN"
	RoleMember   = "MEMBER"
	UserActive   = "ACTIVE"
	UserInactive = "INACTIVE"
)

// The auth routes (docs/activepieces-api.md §10).
const (
	SignInPath         = "/api/v1/authentication/sign-in"
	SwitchPlatformPath = "/api/v1/authentication/switch-platform"
)

// authState is the simulator's users, its JWT secret (AP_JWT_SECRET) and the auth routes'
// rate-limit windows. Passwords are kept as hashes and tokens not at all.
type authState struct {
	secret  []byte
	users   map[string]*user // by id
	byEmail map[string]*user
	windows map[string]*rateWindow // by client IP
	signIns int
}

type user struct {
	id, email, firstName, lastName string
	password                       [32]byte // SHA-256 of the password
	admin                          bool
	inactive, unverified, mfa      bool
	projects                       map[string]bool // never changed after AddUser
	defaultProject                 string
	tokenVersion                   string
}

type rateWindow struct {
	start time.Time
	count int
}

func newAuthState() authState {
	return authState{secret: newSecret(), users: map[string]*user{}, byEmail: map[string]*user{}, windows: map[string]*rateWindow{}}
}

func newSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func withAuthDefaults(opts Options) Options {
	switch opts.Edition {
	case "", EditionEnterprise:
		opts.Edition = EditionEnterprise
	case EditionCloud, EditionCommunity:
	default:
		panic(fmt.Sprintf("simulator: unknown edition %q", opts.Edition))
	}
	switch opts.ProjectsRoute {
	case "":
		opts.ProjectsRoute = "projects"
	case "projects", "users":
	default:
		panic(fmt.Sprintf("simulator: unknown projects route %q", opts.ProjectsRoute))
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = 7 * 24 * time.Hour
	}
	if opts.SignInRateLimit == 0 {
		opts.SignInRateLimit = 50
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.LatestVersion == "" {
		opts.LatestVersion = opts.Version
	}
	if opts.FlowRunTimeSeconds == 0 {
		opts.FlowRunTimeSeconds = 600
	}
	return opts
}

// UserSpec describes a user of the simulator's platform.
type UserSpec struct {
	Email, Password     string
	FirstName, LastName string
	// PlatformRole is RoleAdmin (Admin on every project) or RoleMember (the default).
	PlatformRole string
	// Status is UserActive (the default) or UserInactive.
	Status string
	// Unverified is a user whose email is not verified: sign-in answers EMAIL_IS_NOT_VERIFIED.
	Unverified bool
	// MFA is a user with a second factor: sign-in answers mfaRequired, without a session token.
	MFA bool
	// Projects are the projects a member may read (an admin reads every project).
	Projects []string
	// DefaultProject is the sign-in answer's projectId (default: the first project the user
	// reads, in /v1/projects order; null when there is none).
	DefaultProject string
}

func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// AddUser adds a user and returns its id.
func (s *Server) AddUser(spec UserSpec) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUserLocked(spec)
}

func (s *Server) addUserLocked(spec UserSpec) string {
	email := normEmail(spec.Email)
	if _, ok := s.auth.byEmail[email]; ok || email == "" {
		panic(fmt.Sprintf("simulator: AddUser: email %q empty or taken", spec.Email))
	}
	u := &user{id: s.newID(), email: email, firstName: spec.FirstName, lastName: spec.LastName,
		password: sha256.Sum256([]byte(spec.Password)), admin: spec.PlatformRole == RoleAdmin,
		inactive: spec.Status == UserInactive, unverified: spec.Unverified, mfa: spec.MFA,
		projects: map[string]bool{}, defaultProject: spec.DefaultProject, tokenVersion: s.newID()}
	for _, p := range spec.Projects {
		u.projects[p] = true
	}
	s.auth.users[u.id], s.auth.byEmail[email] = u, u
	return u.id
}

func (s *Server) mustUser(email string) *user {
	u, ok := s.auth.byEmail[normEmail(email)]
	if !ok {
		panic(fmt.Sprintf("simulator: no user %q", email))
	}
	return u
}

// SetUserPassword changes a user's password; like a reset on the real server it gives the user a
// new tokenVersion, so every token issued before is answered SESSION_EXPIRED.
func (s *Server) SetUserPassword(email, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser(email)
	u.password, u.tokenVersion = sha256.Sum256([]byte(password)), s.newID()
}

// SetUserProjects replaces a user's project memberships (an admin adds the user to projects or
// removes it): a removed project is no longer listed to the user and its routes answer 403.
func (s *Server) SetUserProjects(email string, projects ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]bool{}
	for _, p := range projects {
		m[p] = true
	}
	s.mustUser(email).projects = m
}

// SetUserStatus sets UserActive or UserInactive (an inactive user's tokens are SESSION_EXPIRED).
func (s *Server) SetUserStatus(email, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustUser(email).inactive = status == UserInactive
}

// SetUserVerified sets whether a user's email is verified (an unverified user's tokens are
// SESSION_EXPIRED).
func (s *Server) SetUserVerified(email string, verified bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustUser(email).unverified = !verified
}

// RotateJWTSecret changes the server's signing secret (a changed AP_JWT_SECRET): every token
// issued before is answered INVALID_BEARER_TOKEN.
func (s *Server) RotateJWTSecret() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.secret = newSecret()
}

// SignIns counts the successful password sign-ins (session tokens issued by sign-in).
func (s *Server) SignIns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth.signIns
}

// IssueToken returns a session token for a user as sign-in would, without a request (not
// counted by SignIns).
func (s *Server) IssueToken(email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userTokenLocked(s.mustUser(email))
}

// userClaims is the payload of a session token (lib/access-token-manager.ts).
type userClaims struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Platform struct {
		ID string `json:"id"`
	} `json:"platform"`
	TokenVersion string `json:"tokenVersion,omitempty"`
	Iat          int64  `json:"iat"`
	Exp          int64  `json:"exp"`
	Iss          string `json:"iss"`
}

func (s *Server) userTokenLocked(u *user) string {
	now := s.now().Unix()
	c := userClaims{ID: u.id, Type: "USER", TokenVersion: u.tokenVersion, Iat: now,
		Exp: now + int64(s.opts.TokenLifetime/time.Second), Iss: "activepieces"}
	c.Platform.ID = PlatformID
	return s.signLocked(c)
}

func (s *Server) signLocked(payload any) string {
	body, _ := json.Marshal(payload)
	msg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(body)
	return msg + "." + base64.RawURLEncoding.EncodeToString(s.macLocked(msg))
}

func (s *Server) macLocked(msg string) []byte {
	m := hmac.New(sha256.New, s.auth.secret)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// verifyLocked checks a JWT's signature and expiry on the simulator's clock.
func (s *Server) verifyLocked(token string) (userClaims, bool) {
	var c userClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.macLocked(parts[0]+"."+parts[1])) {
		return c, false
	}
	var hdr struct{ Alg string }
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	p, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(h, &hdr) != nil || hdr.Alg != "HS256" || json.Unmarshal(p, &c) != nil {
		return c, false
	}
	return c, c.Exp > s.now().Unix()
}

// principal is who a request authenticated as: the platform's API key (SERVICE) or a user.
type principal struct {
	userID   string // "" for the API key
	admin    bool
	projects map[string]bool
}

func (p *principal) canRead(projectID string) bool {
	return p.userID == "" || p.admin || p.projects[projectID]
}

func notAllowed(w http.ResponseWriter) {
	businessError(w, 403, "AUTHORIZATION", map[string]any{"message": "principal is not allowed for this route"})
}

func invalidBearer(w http.ResponseWriter) {
	businessError(w, 401, "INVALID_BEARER_TOKEN", map[string]any{"message": "invalid access token or session expired"})
}

// authenticate resolves the bearer token (core/security/v2/authn/authenticate.ts): `sk-…` is
// looked up as an API key (there are none on community), anything else is verified as a JWT.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		notAllowed(w)
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.opts.Edition != EditionCommunity
	switch {
	case keys && token == s.opts.APIKey:
		return &principal{}, true
	case strings.HasPrefix(token, "sk-"):
		businessError(w, 401, "AUTHENTICATION", map[string]any{"message": "invalid api key"})
		return nil, false
	}
	c, ok := s.verifyLocked(token)
	u := s.auth.users[c.ID]
	switch {
	case !ok:
		invalidBearer(w)
	case c.Type != "USER":
		notAllowed(w) // e.g. an MFA challenge token
	case u == nil:
		invalidBearer(w)
	case u.tokenVersion != c.TokenVersion || u.inactive || u.unverified:
		businessError(w, 403, "SESSION_EXPIRED", map[string]any{"message": "The session has expired or the user is not verified."})
	default:
		return &principal{userID: u.id, admin: u.admin, projects: u.projects}, true
	}
	return nil, false
}

// authorize authenticates the request and, for project-scoped routes, checks the project
// exists and the principal may read it. It writes the error and returns false on failure.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, projectID string) (*principal, bool) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return nil, false
	}
	if projectID == "" {
		return p, true
	}
	s.mu.Lock()
	_, exists := s.projects[projectID]
	s.mu.Unlock()
	switch {
	case !exists:
		businessError(w, 404, "ENTITY_NOT_FOUND", map[string]any{"entityId": projectID, "entityType": "project"})
	case !p.canRead(projectID):
		noRole(w, p, projectID)
	default:
		return p, true
	}
	return nil, false
}

// noRole is the 403 for a user reading a project it is not a member of
// (ee/authentication/project-role/rbac-service.ts).
func noRole(w http.ResponseWriter, p *principal, projectID string) {
	businessError(w, 403, "AUTHORIZATION", map[string]any{"message": "No role found for the user", "userId": p.userID, "projectId": projectID})
}

// rateLimit counts an auth request against its client IP's window (@fastify/rate-limit, 1
// minute, on the simulator's clock) and answers 429 past the limit.
func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request) bool {
	limit := s.opts.SignInRateLimit
	if limit < 0 {
		return true
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	s.mu.Lock()
	now := s.now()
	win := s.auth.windows[ip]
	if win == nil || !now.Before(win.start.Add(time.Minute)) {
		win = &rateWindow{start: now}
		s.auth.windows[ip] = win
	}
	win.count++
	count, reset := win.count, win.start.Add(time.Minute).Sub(now)
	s.mu.Unlock()
	secs := strconv.Itoa(int(math.Ceil(reset.Seconds())))
	h := w.Header()
	h.Set("x-ratelimit-limit", strconv.Itoa(limit))
	h.Set("x-ratelimit-remaining", strconv.Itoa(max(0, limit-count)))
	h.Set("x-ratelimit-reset", secs)
	if count <= limit {
		return true
	}
	h.Set("retry-after", secs)
	writeJSON(w, 429, map[string]any{"statusCode": 429, "error": "Too Many Requests", "message": "Rate limit exceeded, retry in 1 minute"})
	return false
}
