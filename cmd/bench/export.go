package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// exportRun is one `tokenledger export` or `export verify` over the whole
// lifecycle stream.
type exportRun struct {
	Records int64
	Seconds float64
	Rate    float64
}

var (
	exportLine = regexp.MustCompile(`exported ([\d,]+) records to .*\(([\d,]+) events read in ([\d.]+) s: ([\d,]+) events/s\)`)
	verifyLine = regexp.MustCompile(`(?m)^OK: .*?, ([\d,]+) records`)
)

// exportAvailable reports whether this build of tokenledger has the export
// commands.
func (b *bench) exportAvailable(ctx context.Context) bool {
	out, err := b.procs.runCmd(ctx, "export-help", b.cfg.repo, nil, b.cfg.tokenledger, "export", "--help")
	return err == nil && strings.Contains(out, "verify") && strings.Contains(out, "--out")
}

// exportAndVerify exports the whole lifecycle stream, signed with a key
// made by `export keygen`, and verifies the export, runs times; without
// the export commands it notes that the figures are not measured.
func (b *bench) exportAndVerify(ctx context.Context, d *devStack) error {
	if !b.exportAvailable(ctx) {
		b.res.ExportMissing = "`tokenledger export` is not in this build"
		logf("export: not measured: %s", b.res.ExportMissing)
		return nil
	}
	key := filepath.Join(b.work, "data", "export-key")
	if _, err := b.procs.runCmd(ctx, "export-keygen", b.cfg.repo, nil, b.cfg.tokenledger, "export", "keygen", "--out", key); err != nil {
		return fmt.Errorf("export keygen: %w", err)
	}
	// Every event is recorded during this run: a range of a few days
	// around it holds them all.
	from := b.machine.Date.AddDate(0, 0, -1).Format(time.DateOnly)
	to := time.Now().UTC().AddDate(0, 0, 2).Format(time.DateOnly)
	for i := range b.cfg.runs {
		file := filepath.Join(b.work, "data", fmt.Sprintf("export-run%d.jsonl", i+1))
		out, err := b.procs.runCmd(ctx, fmt.Sprintf("export-run%d", i+1), b.cfg.repo, nil, b.cfg.tokenledger, "export",
			"--from", from, "--to", to, "--out", file, "--key", key+".key", "--nats-url", d.NATSURL, "--progress", "off")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		e, err := parseExport(out)
		if err != nil {
			return err
		}
		start := time.Now()
		out, err = b.procs.runCmd(ctx, fmt.Sprintf("export-verify-run%d", i+1), b.cfg.repo, nil, b.cfg.tokenledger, "export", "verify",
			file, "--pubkey", key+".pub", "--progress", "off")
		if err != nil {
			return fmt.Errorf("export verify: %w", err)
		}
		v, err := parseVerify(out, time.Since(start))
		if err != nil {
			return err
		}
		if v.Records != e.Records {
			return fmt.Errorf("export wrote %d records, verify checked %d", e.Records, v.Records)
		}
		b.res.Export, b.res.Verify = append(b.res.Export, e), append(b.res.Verify, v)
		logf("export run %d: %s records at %s events/s; verify at %s events/s", i+1, fmtInt(float64(e.Records)), fmtInt(e.Rate), fmtInt(v.Rate))
		_ = os.Remove(file)
		_ = os.Remove(file + ".manifest.json")
	}
	return nil
}

func parseExport(out string) (exportRun, error) {
	m := exportLine.FindStringSubmatch(out)
	if m == nil {
		return exportRun{}, fmt.Errorf("no summary line in export's output:\n%s", out)
	}
	var r exportRun
	r.Records, _ = strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	r.Seconds, _ = strconv.ParseFloat(m[3], 64)
	r.Rate, _ = strconv.ParseFloat(strings.ReplaceAll(m[4], ",", ""), 64)
	return r, nil
}

// parseVerify reads verify's OK line; the rate is the records over the
// command's whole run.
func parseVerify(out string, took time.Duration) (exportRun, error) {
	m := verifyLine.FindStringSubmatch(out)
	if m == nil {
		return exportRun{}, fmt.Errorf("no OK line in export verify's output:\n%s", out)
	}
	var r exportRun
	r.Records, _ = strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	r.Seconds = took.Seconds()
	r.Rate = float64(r.Records) / r.Seconds
	return r, nil
}
