package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bad credential settings get an exact error, and none of them contains the password.
func TestCredentialSettings(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tc := range []struct {
		name  string
		flags ActivepiecesFlags
		env   map[string]string
		want  string // "" = accepted
	}{
		{"key and email", ActivepiecesFlags{Email: "ops@example.com"}, map[string]string{"ACTIVEPIECES_API_KEY": "sk-x", "ACTIVEPIECES_PASSWORD": "s3cret-password"},
			"both an API key and --activepieces.email are set: use the API key (Enterprise, Cloud) or sign in as a user (Community Edition), not both"},
		{"key file and email", ActivepiecesFlags{Email: "ops@example.com", APIKeyFile: pwFile, PasswordFile: pwFile}, nil,
			"both an API key and --activepieces.email are set: use the API key (Enterprise, Cloud) or sign in as a user (Community Edition), not both"},
		{"email without password", ActivepiecesFlags{Email: "ops@example.com"}, nil,
			"no password: set ACTIVEPIECES_PASSWORD or --activepieces.password-file (with --activepieces.email)"},
		{"password file without email", ActivepiecesFlags{PasswordFile: pwFile}, map[string]string{"ACTIVEPIECES_API_KEY": "sk-x"},
			"--activepieces.password-file needs --activepieces.email (ACTIVEPIECES_EMAIL)"},
		{"missing password file", ActivepiecesFlags{Email: "ops@example.com", PasswordFile: filepath.Join(dir, "nope")}, nil,
			"reading password file " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"email and password file", ActivepiecesFlags{Email: "ops@example.com", PasswordFile: pwFile}, nil, ""},
		{"email and password env", ActivepiecesFlags{Email: "ops@example.com"}, map[string]string{"ACTIVEPIECES_PASSWORD": "s3cret-password"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newCredentials(tc.flags, 30*time.Second, env(tc.env))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want == "" && c.signIn == nil:
				t.Fatal("not signing in")
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("error %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("the password is in the error: %v", err)
			}
		})
	}
}
