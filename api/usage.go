package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/sdk"
)

// maxUsageBuckets bounds the buckets one usage series may span.
const maxUsageBuckets = 24 * 400

// usageSeries answers GET /v1/tokens/{id}/usage?granularity=hour|day&from=&to=:
// the token's uses per hour or day (UTC) from the usage rollups. to
// defaults to now, from to a day (hour) or thirty days (day) before to;
// both take what domain.ParseTime does (RFC 3339, a date, now, -2h).
func (s *Server) usageSeries(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	id, err := parseTokenID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := checkQuery(q, "granularity", "from", "to"); err != nil {
		return err
	}
	g := projections.Hourly
	if raw := q.Get("granularity"); raw != "" {
		g = projections.Granularity(raw)
		if !g.Valid() {
			return badRequest(`granularity must be "hour" or "day"`)
		}
	}
	now := time.Now()
	to := now
	if raw := q.Get("to"); raw != "" {
		if to, err = domain.ParseTime(raw, now); err != nil {
			return badRequest("to must be an RFC 3339 time, a date, now, or a relative time such as -2h")
		}
	}
	from := to.Add(-24 * time.Hour)
	if g == projections.Daily {
		from = to.Add(-30 * 24 * time.Hour)
	}
	if raw := q.Get("from"); raw != "" {
		if from, err = domain.ParseTime(raw, now); err != nil {
			return badRequest("from must be an RFC 3339 time, a date, now, or a relative time such as -2h")
		}
	}
	// The last bucket is the one to falls in.
	to = to.UTC().Truncate(g.Width()).Add(g.Width())
	switch {
	case !from.Before(to):
		return badRequest("from must be before to")
	case to.Sub(from)/g.Width() > maxUsageBuckets:
		return badRequest(fmt.Sprintf("a usage series spans at most %d buckets", maxUsageBuckets))
	}
	buckets, err := s.ledger.UsageSeries(r.Context(), c, id, g, from, to)
	if err != nil {
		return err
	}
	out := sdk.UsageSeries{Granularity: string(g), From: from.UTC().Truncate(g.Width()), To: to, Items: make([]sdk.UsageBucket, len(buckets))}
	for i, b := range buckets {
		out.Items[i] = sdk.UsageBucket{Start: b.Start, Count: b.Count}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
