package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

const secretKey = "sk-leakCanary0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"

// TestTheKeyNeverLeaks runs the exporter at debug level with a key the API first refuses, then
// (after a rotation of the key file and SIGHUP) accepts, and looks for the key everywhere it could
// surface: every log line, /metrics, the landing page, and a full goroutine dump (SIGQUIT, what a
// panic prints).
func TestTheKeyNeverLeaks(t *testing.T) {
	bin := buildBinary(t)
	sim := simulator.New(simulator.Options{APIKey: secretKey})
	p := sim.AddProject("P")
	f := sim.AddFlow(p, "", "F")
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	keyFile := filepath.Join(t.TempDir(), "api-key")
	wrong := strings.Replace(secretKey, "leak", "LEAK", 1)
	if err := os.WriteFile(keyFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreePort(t)
	var logs testkit.LockedBuffer
	cmd := exec.Command(bin, "--activepieces.url="+srv.URL+"/api", "--activepieces.api-key-file="+keyFile,
		"--poll.interval=200ms", "--log.level=debug", "--web.listen-address="+addr)
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	testkit.WaitFor(t, 10*time.Second, "a 401 in the log", func() bool { return strings.Contains(logs.String(), "AUTHENTICATION") })
	// Rotate: the file now holds the right key, replaced at once as Kubernetes swaps a secret
	// (a truncate-then-write could be read half done); SIGHUP re-reads it.
	if err := os.WriteFile(keyFile+".new", []byte(secretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(keyFile+".new", keyFile); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sim.AddRun(simulator.RunSpec{FlowID: f})
	var metrics string
	testkit.WaitFor(t, 10*time.Second, "activepieces_up 1 after the key rotation", func() bool {
		metrics, _, _ = scrape("http://" + addr + "/metrics")
		return strings.Contains(metrics, "activepieces_up 1")
	})
	landing, _, _ := scrape("http://" + addr + "/")
	if strings.Contains(landing, "debug/pprof") {
		t.Error("the landing page links to pprof pages that are not served")
	}
	if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	dump := logs.String()
	if !strings.Contains(dump, "goroutine ") {
		t.Fatalf("no goroutine dump after SIGQUIT:\n%s", dump)
	}
	if !strings.Contains(dump, "API key reloaded") {
		t.Error("no log line about the reloaded key")
	}
	for where, text := range map[string]string{"logs and goroutine dump": dump, "/metrics": metrics, "landing page": landing} {
		for _, k := range []string{secretKey, wrong, strings.TrimPrefix(secretKey, "sk-")[:20]} {
			if strings.Contains(text, k) {
				t.Errorf("the API key appears in %s", where)
			}
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their paths and a pool
// trusting it.
func selfSigned(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "activepieces_exporter test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	certPath, keyPath, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	cfg := "tls_server_config:\n  cert_file: " + certPath + "\n  key_file: " + keyPath + "\nbasic_auth_users:\n  prometheus: " + string(hash) + "\n"
	if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreePort(t)
	var logs testkit.LockedBuffer
	cmd := exec.Command(bin, "--demo", "--poll.interval=500ms", "--web.listen-address="+addr, "--web.config.file="+webConfig)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	path := "/metrics"
	get := func(user, pass string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b := make([]byte, 1<<20)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	testkit.WaitFor(t, 10*time.Second, "the TLS listener", func() bool { code, _ := get("", ""); return code != 0 })
	if code, _ := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _ := get("prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	code, body := get("prometheus", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, "# HELP") {
		t.Errorf("with credentials: %d %.200s", code, body)
	}
	// The status page has the same protection.
	path = "/status"
	if code, _ := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("/status without credentials: %d, want 401", code)
	}
	if code, body := get("prometheus", "s3cret"); code != http.StatusOK || !strings.Contains(body, "<!DOCTYPE html>") {
		t.Errorf("/status with credentials: %d %.200s", code, body)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served metrics on a TLS listener")
		}
	}
}
