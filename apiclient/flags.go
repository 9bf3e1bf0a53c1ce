package apiclient

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Flags are the server facts of GET /v1/flags that the exporter uses (docs/activepieces-api.md
// §11). A flag the server does not send, sends as null or sends with another type than expected
// is left at its zero value: flags come and go between versions.
type Flags struct {
	Edition       string // EDITION: "ce", "ee" or "cloud" (lower-cased)
	Version       string // CURRENT_VERSION, e.g. "0.85.4"
	LatestVersion string // LATEST_VERSION
	// FlowRunTimeSeconds is FLOW_RUN_TIME_SECONDS, the run timeout (0: not sent).
	FlowRunTimeSeconds int64
	// ExecutionDataRetentionDays is EXECUTION_DATA_RETENTION_DAYS: older runs are deleted (0: not sent).
	ExecutionDataRetentionDays int64
}

// Editions of Flags.Edition.
const (
	EditionCommunity  = "ce"
	EditionEnterprise = "ee"
	EditionCloud      = "cloud"
)

// maxFlagsBytes bounds the flags answer (about 10 KiB on current servers; themes carry URLs).
const maxFlagsBytes = 1 << 20

// GetFlags reads the server's public flags. It sends no Authorization header and never signs
// in. A server (or proxy) without the route answers a 404: errors.Is(err, ErrNotFound) (and
// ErrRouteNotFound) then, which callers treat as "no flags".
func (c *Client) GetFlags(ctx context.Context) (Flags, error) {
	var raw map[string]json.RawMessage
	err := c.do(ctx, &request{endpoint: EndpointFlags, method: http.MethodGet, path: "/v1/flags", public: true,
		lim: c.valueLimits(maxFlagsBytes), decode: func(cr *capReader) error { return decodeValue(cr, &raw) }})
	if err != nil {
		return Flags{}, err
	}
	return Flags{
		Edition:                    strings.ToLower(strings.TrimSpace(flagString(raw["EDITION"]))),
		Version:                    flagString(raw["CURRENT_VERSION"]),
		LatestVersion:              flagString(raw["LATEST_VERSION"]),
		FlowRunTimeSeconds:         flagCount(raw["FLOW_RUN_TIME_SECONDS"]),
		ExecutionDataRetentionDays: flagCount(raw["EXECUTION_DATA_RETENTION_DAYS"]),
	}, nil
}

// flagString is a JSON string's value, "" for anything else; bounded, like any label value.
func flagString(v json.RawMessage) string { return truncate(jsonString(v), 100) }

// maxFlagCount bounds a count flag: larger values are not plausible (about 30 years in seconds).
const maxFlagCount = 1e9

// flagCount is a non-negative whole count sent as a JSON number or a numeric string; 0 for
// anything else (missing, null, negative, fractional, huge, another type).
func flagCount(v json.RawMessage) int64 {
	var n json.Number
	if json.Unmarshal(v, &n) != nil {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return 0
		}
		n = json.Number(strings.TrimSpace(s))
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f < 0 || f > maxFlagCount || f != math.Trunc(f) {
		return 0
	}
	return int64(f)
}
