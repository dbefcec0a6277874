package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// series is one figure over the runs of a scenario.
type series []float64

func (s series) sorted() []float64 {
	c := slices.Clone([]float64(s))
	slices.Sort(c)
	return c
}

// median is the middle value (the mean of the two middle ones for an even
// count); NaN when empty.
func (s series) median() float64 {
	c := s.sorted()
	switch n := len(c); {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return c[n/2]
	default:
		return (c[n/2-1] + c[n/2]) / 2
	}
}

func (s series) min() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Min(s)
}

func (s series) max() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Max(s)
}

// percentile is the nearest-rank percentile p of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// of maps every run to one number.
func of[T any](runs []T, f func(T) float64) series {
	s := make(series, len(runs))
	for i, r := range runs {
		s[i] = f(r)
	}
	return s
}

// spread renders a series as "median (min–max)" with format f; the range
// drops the unit when it is the median's, and is left out when min and max
// render the same.
func spread(s series, f func(float64) string) string {
	if len(s) == 0 {
		return "—"
	}
	med, lo, hi := f(s.median()), f(s.min()), f(s.max())
	if lo == hi {
		return med
	}
	if u := unit(med); u != "" && unit(lo) == u && unit(hi) == u {
		lo, hi = strings.TrimSuffix(lo, u), strings.TrimSuffix(hi, u)
	}
	return fmt.Sprintf("%s (%s–%s)", med, lo, hi)
}

// unit is what follows the last digit of a rendered number: " ms", "/s".
func unit(s string) string {
	i := strings.LastIndexAny(s, "0123456789")
	if i < 0 {
		return ""
	}
	return s[i+1:]
}

// fmtInt renders 22961.4 as "22,961".
func fmtInt(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtRate renders a per-second rate: "3.48 M/s", "22,961/s".
func fmtRate(v float64) string {
	if v >= 1e6 {
		return fmt.Sprintf("%.2f M/s", v/1e6)
	}
	return fmtInt(v) + "/s"
}

// fmtUS renders microseconds as ns, µs, ms or s.
func fmtUS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v < 1:
		return fmt.Sprintf("%.0f ns", v*1000)
	case v < 1000:
		return fmt.Sprintf("%.0f µs", v)
	case v < 1e6:
		return fmt.Sprintf("%.2f ms", v/1000)
	default:
		return fmt.Sprintf("%.2f s", v/1e6)
	}
}

// fmtNS renders nanoseconds.
func fmtNS(v float64) string { return fmtUS(v / 1000) }

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// row is one line of the table.
type row struct {
	Figure, Target, Measured, Ratio, Command string
	// Misses says how the figure misses its target; empty when it meets
	// it or has none.
	Misses []string
}

// table renders the rows as a Markdown table.
func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| figure | target | measured | ratio | command |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		m := r.Measured
		if len(r.Misses) > 0 {
			m += " — **misses:** " + strings.Join(r.Misses, "; ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(r.Figure), cell(r.Target), cell(m), cell(orDash(r.Ratio)), cell(r.Command))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// The markers around the generated part of BENCHMARKS.md.
const (
	beginMarker = "<!-- bench:begin (written by make bench; edit outside the markers) -->"
	endMarker   = "<!-- bench:end -->"
)

// replaceBetweenMarkers returns doc with the text between the markers
// replaced by body.
func replaceBetweenMarkers(doc, body string) (string, error) {
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	switch {
	case i < 0 || j < 0:
		return "", errors.New("BENCHMARKS.md lacks the markers " + beginMarker + " and " + endMarker)
	case j < i:
		return "", errors.New("BENCHMARKS.md has its end marker before its begin marker")
	case strings.Count(doc, beginMarker) != 1 || strings.Count(doc, endMarker) != 1:
		return "", errors.New("BENCHMARKS.md has more than one pair of bench markers")
	}
	return doc[:i+len(beginMarker)] + "\n" + strings.TrimSpace(body) + "\n" + doc[j:], nil
}
