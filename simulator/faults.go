package simulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"
)

// Fault changes how the simulator answers matching requests, to test what a client does when the
// API or the network misbehaves. Faults are queued and taken in order.
type Fault struct {
	// Path limits the fault to one path, e.g. "/api/v1/flow-runs" ("" = any).
	Path string
	// Times is how many matching requests the fault affects (0 means 1, -1 means forever).
	Times int
	// Status and Body, when Status is set, answer instead of the simulator. Header is added.
	Status int
	Body   string
	Header http.Header
	// Delay holds the answer back (the request's own cancellation ends it early).
	Delay time.Duration
	// Reset closes the connection without an answer.
	Reset bool
	// Truncate sends the real answer cut in half.
	Truncate bool
	// LoopCursor makes the real answer's next cursor one that leads back to the first page.
	LoopCursor bool
	// EndlessNext gives every page of the real answer a new next cursor, so a listing never ends.
	EndlessNext bool
	// HugePage answers a run listing with every matching run in one page, whatever the limit.
	HugePage bool
	// IgnoreCreatedAfter and IgnoreCreatedBefore answer as if the request had no such bound.
	IgnoreCreatedAfter, IgnoreCreatedBefore bool
	// Rewrite, if set, changes the real answer's body (e.g. a number out of range).
	Rewrite func(body []byte) []byte
	// Stream, if set, answers 200 with the body it writes (huge or slow answers); it should stop
	// when the request's context ends.
	Stream func(w io.Writer, r *http.Request)
	// Before, if set, runs before the request is answered (to change the data in the middle of a
	// client's sequence of requests).
	Before func()
}

// InjectFault queues a fault.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) takeFault(path string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Path != "" && f.Path != path {
			continue
		}
		taken := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		return &taken
	}
	return nil
}

// apply answers the request as the fault says; false means the simulator should answer as usual.
func (f *Fault) apply(w http.ResponseWriter, r *http.Request, s *Server) bool {
	if f.Before != nil {
		f.Before()
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-t.C:
		}
	}
	if f.Reset {
		if hj, ok := unwrapHijacker(w); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	}
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.Status != 0 {
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(f.Body))
		return true
	}
	if f.Stream != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		f.Stream(w, r)
		return true
	}
	if !f.Truncate && !f.LoopCursor && !f.EndlessNext && !f.HugePage && !f.IgnoreCreatedAfter && !f.IgnoreCreatedBefore && f.Rewrite == nil {
		return false
	}
	s.answerChanged(w, r, f)
	return true
}

// answerChanged answers with the simulator's real answer, changed as the fault says.
func (s *Server) answerChanged(w http.ResponseWriter, r *http.Request, f *Fault) {
	if f.HugePage || f.IgnoreCreatedAfter || f.IgnoreCreatedBefore {
		q := r.URL.Query()
		if f.HugePage {
			q.Set("limit", "-1")
		}
		if f.IgnoreCreatedAfter {
			q.Del("createdAfter")
		}
		if f.IgnoreCreatedBefore {
			q.Del("createdBefore")
		}
		r = r.Clone(r.Context())
		r.URL.RawQuery = q.Encode()
	}
	rec := httptest.NewRecorder()
	s.route(rec, r)
	body := rec.Body.Bytes()
	if f.LoopCursor || f.EndlessNext {
		var page map[string]any
		if json.Unmarshal(body, &page) == nil {
			if f.LoopCursor {
				// A cursor the server ignores (malformed) serves the first page again.
				page["next"] = base64.StdEncoding.EncodeToString([]byte("next_loop"))
			} else {
				s.mu.Lock()
				page["next"] = base64.StdEncoding.EncodeToString([]byte("next_endless" + strconv.Itoa(s.rng.Int())))
				s.mu.Unlock()
			}
			body, _ = json.Marshal(page)
		}
	}
	if f.Rewrite != nil {
		body = f.Rewrite(bytes.Clone(body))
		w.Header().Del("Content-Length")
	}
	if f.Truncate {
		body = body[:len(body)/2]
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(bytes.Clone(body))
}

func unwrapHijacker(w http.ResponseWriter) (http.Hijacker, bool) {
	if rec, ok := w.(*statusRecorder); ok {
		w = rec.ResponseWriter
	}
	hj, ok := w.(http.Hijacker)
	return hj, ok
}
