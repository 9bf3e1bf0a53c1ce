package apiclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MaxCursorLength bounds a cursor the client will send back; a longer one is refused as hostile.
const MaxCursorLength = 8 << 10

// Walk is the outcome of a paginated listing.
type Walk struct {
	Pages int
	// Capped is true when the listing stopped at maxPages with more pages left. Callers resume
	// by time range, not by cursor (a saved cursor goes stale), so the cursor is not kept.
	Capped bool
}

// Paginate follows a listing from cursor start: fetch(cursor) gets a page, visit sees it and may
// stop the walk by returning false. It stops at the last page, at maxPages (Capped), or with
// ErrCursorLoop when the server hands back a cursor already followed in this walk.
func Paginate[T any](ctx context.Context, start string, maxPages int,
	fetch func(ctx context.Context, cursor string) (*Page[T], error),
	visit func(*Page[T]) (more bool, err error),
) (Walk, error) {
	var w Walk
	followed := map[string]struct{}{}
	cursor := start
	for {
		if cursor != "" {
			if len(cursor) > MaxCursorLength {
				return w, fmt.Errorf("%w: cursor of %d bytes refused", ErrBadResponse, len(cursor))
			}
			if _, dup := followed[cursor]; dup {
				return w, fmt.Errorf("%w (after %d pages)", ErrCursorLoop, w.Pages)
			}
			followed[cursor] = struct{}{}
		}
		page, err := fetch(ctx, cursor)
		if err != nil {
			return w, err
		}
		w.Pages++
		more, err := visit(page)
		if err != nil {
			return w, err
		}
		next := page.NextCursor()
		if !more || next == "" {
			return w, nil
		}
		if maxPages > 0 && w.Pages >= maxPages {
			w.Capped = true
			return w, nil
		}
		cursor = next
	}
}

// ListAll collects every item of a listing, refusing to read more than maxPages pages.
func ListAll[T any](ctx context.Context, maxPages int, fetch func(ctx context.Context, cursor string) (*Page[T], error)) ([]T, error) {
	var all []T
	w, err := Paginate(ctx, "", maxPages, fetch, func(p *Page[T]) (bool, error) {
		all = append(all, p.Data...)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if w.Capped {
		return nil, fmt.Errorf("listing has more than %d pages", maxPages)
	}
	return all, nil
}

// CursorKind tells how a server pages, read from one of its cursors (docs/activepieces-api.md §2). Cursors are
// opaque; this only decides whether extra care is needed, and an unrecognised cursor is treated
// the careful way.
type CursorKind int

const (
	// CursorUnknown: not a cursor this client recognises; assume second granularity.
	CursorUnknown CursorKind = iota
	// CursorKeyset: composite {created,id} keyset cursor (servers since 2026-06): exact.
	CursorKeyset
	// CursorSecond: single-field "created:<ms>" cursor compared at second granularity (older
	// servers): rows sharing the boundary second may be skipped.
	CursorSecond
)

// ClassifyCursor reads a flow-run cursor.
func ClassifyCursor(cursor string) CursorKind {
	outer, err := base64.StdEncoding.DecodeString(cursor)
	if err != nil {
		return CursorUnknown
	}
	s := string(outer)
	s, ok := strings.CutPrefix(s, "next_")
	if !ok {
		s, ok = strings.CutPrefix(s, "prev_")
	}
	if !ok {
		return CursorUnknown
	}
	inner, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return CursorUnknown
	}
	if strings.HasPrefix(string(inner), "created:") {
		return CursorSecond
	}
	var keyset struct {
		Created string `json:"created"`
		ID      string `json:"id"`
	}
	if json.Unmarshal(inner, &keyset) == nil && keyset.Created != "" && keyset.ID != "" {
		if _, err := time.Parse(time.RFC3339Nano, keyset.Created); err == nil {
			return CursorKeyset
		}
	}
	return CursorUnknown
}
