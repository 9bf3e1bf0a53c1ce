package simulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const maxBody = 1 << 20 // fastify's default bodyLimit

func fastifyError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "code": code, "error": http.StatusText(status), "message": msg})
}

// readJSONBody parses a JSON object body as fastify does, writing its error on failure.
func readJSONBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(raw) > maxBody {
		fastifyError(w, 413, "FST_ERR_CTP_BODY_TOO_LARGE", "Request body is too large")
		return nil, false
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case len(raw) == 0 && ct == "application/json":
		fastifyError(w, 400, "FST_ERR_CTP_EMPTY_JSON_BODY", "Body cannot be empty when content-type is set to 'application/json'")
		return nil, false
	case len(raw) == 0:
		validationError(w, "body Invalid input: expected object, received undefined")
		return nil, false
	case ct != "application/json":
		fastifyError(w, 415, "FST_ERR_CTP_INVALID_MEDIA_TYPE", "Unsupported Media Type: "+r.Header.Get("Content-Type"))
		return nil, false
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		fastifyError(w, 400, "FST_ERR_CTP_INVALID_JSON_BODY", "Body is not valid JSON but content-type is set to 'application/json'")
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		validationError(w, "body Invalid input: expected object, received "+zodType(v))
		return nil, false
	}
	return m, true
}

// zodType names a JSON value's type as zod's messages do.
func zodType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	}
	return "object"
}

// bodyString validates a string field of a body, with length bounds (0: none), appending
// fastify's message for a failure.
func bodyString(body map[string]any, name string, minLen, maxLen int, msgs *[]string) string {
	v, present := body[name]
	s, ok := v.(string)
	switch {
	case !present:
		*msgs = append(*msgs, "body/"+name+" Invalid input: expected string, received undefined")
	case !ok:
		*msgs = append(*msgs, "body/"+name+" Invalid input: expected string, received "+zodType(v))
	case minLen > 0 && len([]rune(s)) < minLen:
		*msgs = append(*msgs, "body/"+name+" Too small: expected string to have >="+strconv.Itoa(minLen)+" characters")
	case maxLen > 0 && len([]rune(s)) > maxLen:
		*msgs = append(*msgs, "body/"+name+" Too big: expected string to have <="+strconv.Itoa(maxLen)+" characters")
	}
	return s
}

// signIn answers POST /v1/authentication/sign-in (authentication.controller.ts; the checks in
// the order of user-identity-service.ts verifyIdentityPassword and getProjectAndToken).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if !s.rateLimit(w, r) {
		return
	}
	body, ok := readJSONBody(w, r)
	if !ok {
		return
	}
	var msgs []string
	email := bodyString(body, "email", 0, 0, &msgs)
	password := bodyString(body, "password", 8, 64, &msgs)
	if len(msgs) > 0 {
		validationError(w, strings.Join(msgs, ", "))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.auth.byEmail[normEmail(email)]
	hash := sha256.Sum256([]byte(password))
	switch {
	case u == nil:
		businessError(w, 401, "INVALID_CREDENTIALS", nil)
	case u.unverified:
		businessError(w, 403, "EMAIL_IS_NOT_VERIFIED", map[string]any{"email": u.email})
	case subtle.ConstantTimeCompare(hash[:], u.password[:]) != 1:
		businessError(w, 401, "INVALID_CREDENTIALS", nil)
	case u.mfa:
		now := s.now().Unix()
		token := s.signLocked(map[string]any{"type": "MFA_CHALLENGE", "identityId": u.id, "platformId": PlatformID,
			"iat": now, "exp": now + int64(5*time.Minute/time.Second), "iss": "activepieces"})
		writeJSON(w, 200, map[string]any{"mfaRequired": true, "mfaToken": token})
	case u.inactive:
		businessError(w, 403, "USER_IS_INACTIVE", map[string]any{"email": u.email})
	default:
		s.auth.signIns++
		writeJSON(w, 200, s.authResponseLocked(u))
	}
}

// switchPlatform answers POST /v1/authentication/switch-platform: a USER principal switching to
// its own platform gets a fresh AuthenticationResponse.
func (s *Server) switchPlatform(w http.ResponseWriter, r *http.Request) {
	if !s.rateLimit(w, r) {
		return
	}
	body, ok := readJSONBody(w, r)
	if !ok {
		return
	}
	var msgs []string
	platformID := bodyString(body, "platformId", 0, 0, &msgs)
	if len(msgs) > 0 {
		validationError(w, strings.Join(msgs, ", "))
		return
	}
	p, ok := s.authenticate(w, r)
	switch {
	case !ok:
	case p.userID == "":
		notAllowed(w)
	case platformID != PlatformID:
		businessError(w, 403, "AUTHORIZATION", map[string]any{"message": "The user is not a member of the platform"})
	default:
		s.mu.Lock()
		defer s.mu.Unlock()
		writeJSON(w, 200, s.authResponseLocked(s.auth.users[p.userID]))
	}
}

// authResponseLocked is the AuthenticationResponse for a user, with a new session token.
func (s *Server) authResponseLocked(u *user) map[string]any {
	var projectID any
	if _, ok := s.projects[u.defaultProject]; ok {
		projectID = u.defaultProject
	} else {
		for _, p := range s.sortedProjectsLocked() {
			if u.admin || u.projects[p.ID] {
				projectID = p.ID
				break
			}
		}
	}
	role, status := RoleMember, UserActive
	if u.admin {
		role = RoleAdmin
	}
	if u.inactive {
		status = UserInactive
	}
	return map[string]any{
		"id": u.id, "platformRole": role, "status": status, "externalId": nil, "platformId": PlatformID,
		"verified": !u.unverified, "firstName": u.firstName, "lastName": u.lastName, "email": u.email,
		"trackEvents": true, "newsLetter": false, "token": s.userTokenLocked(u), "projectId": projectID,
	}
}
