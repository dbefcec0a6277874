package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// goBench is one result line of `go test -bench`.
type goBench struct {
	// Name is the benchmark's full name without the GOMAXPROCS suffix.
	Name string
	// Procs is GOMAXPROCS of the run (1 when the name has no suffix).
	Procs int
	// N is the number of iterations.
	N int64
	// Metrics maps a unit ("ns/op", "allocs/op", "p99-ns", ...) to its value.
	Metrics map[string]float64
}

// parseGoBench reads the result lines of `go test -bench` output. cpus are
// the -cpu values of the run: a trailing "-P" is taken for the GOMAXPROCS
// suffix only when P is one of them (and not 1, which Go never appends), so
// that a sub-benchmark named "concurrent-16" keeps its name.
func parseGoBench(out string, cpus []int) ([]goBench, error) {
	var res []goBench
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		b := goBench{Name: f[0], Procs: 1, N: n, Metrics: map[string]float64{}}
		if i := strings.LastIndexByte(b.Name, '-'); i > 0 {
			if p, err := strconv.Atoi(b.Name[i+1:]); err == nil && p != 1 && slices.Contains(cpus, p) {
				b.Name, b.Procs = b.Name[:i], p
			}
		}
		for k := 2; k+1 < len(f); k += 2 {
			v, err := strconv.ParseFloat(f[k], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q: %w", line, f[k], err)
			}
			b.Metrics[f[k+1]] = v
		}
		res = append(res, b)
	}
	return res, nil
}

// goBenchSpec is one `go test -bench` invocation.
type goBenchSpec struct {
	pkg       string
	pattern   string
	cpus      []int
	benchtime string // "" for the run's default
}

// command renders the invocation as a person would type it.
func (s goBenchSpec) command(count int, benchtime string) string {
	if s.benchtime != "" {
		benchtime = s.benchtime
	}
	cmd := fmt.Sprintf("go test -run '^$' -bench '%s' -benchmem -count %d -benchtime %s", s.pattern, count, benchtime)
	if len(s.cpus) > 0 {
		cmd += " -cpu " + joinInts(s.cpus)
	}
	return cmd + " " + s.pkg
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// runGoBench runs one invocation in the repository and returns its
// results.
func (b *bench) runGoBench(ctx context.Context, s goBenchSpec) ([]goBench, error) {
	benchtime := b.cfg.goBenchtime
	if s.benchtime != "" {
		benchtime = s.benchtime
	}
	args := []string{b.cfg.goTool, "test", "-run", "^$", "-bench", s.pattern, "-benchmem",
		"-count", strconv.Itoa(b.cfg.goCount), "-benchtime", benchtime, "-timeout", "20m"}
	cpus := s.cpus
	if len(cpus) > 0 {
		args = append(args, "-cpu", joinInts(cpus))
	} else {
		cpus = []int{b.machine.CPUs}
	}
	args = append(args, s.pkg)
	name := "go-test-" + safeName(s.pkg+"-"+s.pattern)
	out, err := b.procs.runCmd(ctx, name, b.cfg.repo, nil, args...)
	if err != nil {
		return nil, err
	}
	res, err := parseGoBench(out, cpus)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s printed no benchmark results:\n%s", strings.Join(args, " "), out)
	}
	return res, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string {
	s = unsafeName.ReplaceAllString(s, "_")
	if len(s) > 80 {
		s = s[:80]
	}
	return strings.Trim(s, "_")
}

// metricSeries collects metric unit of every result named name at procs.
func metricSeries(res []goBench, name string, procs int, unit string) series {
	var s series
	for _, r := range res {
		if r.Name == name && r.Procs == procs {
			if v, ok := r.Metrics[unit]; ok {
				s = append(s, v)
			}
		}
	}
	return s
}
