package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where the figures were measured.
type machine struct {
	CPUModel  string
	CPUs      int
	MemoryGiB float64
	Kernel    string
	OS        string
	Go        string
	Wrk       string
	Postgres  string
	NATS      string
	Date      time.Time
	// OthersAvg and OthersPeak are the cores that processes other than
	// the bench's used during the run, on average and at most over ten
	// seconds (see cpuWatch): they shared the machine with the figures.
	OthersAvg, OthersPeak float64
}

func describeMachine(ctx context.Context, goTool string) machine {
	m := machine{CPUs: runtime.NumCPU(), Date: time.Now().UTC()}
	if out, err := exec.CommandContext(ctx, "lscpu").Output(); err == nil {
		for line := range strings.SplitSeq(string(out), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if m.CPUModel == "" {
		m.CPUModel = "unknown CPU"
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGiB = kb / (1 << 20)
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, goTool, "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	} else {
		m.Go = runtime.Version()
	}
	if out, err := exec.CommandContext(ctx, "wrk", "-v").CombinedOutput(); len(out) > 0 {
		_ = err // wrk -v exits non-zero after printing its version
		first, _, _ := strings.Cut(string(out), "\n")
		if f := strings.Fields(first); len(f) >= 2 {
			m.Wrk = f[1]
		}
	}
	return m
}

// String renders the machine line of BENCHMARKS.md.
func (m machine) String() string {
	s := fmt.Sprintf("%s, %d cores, %.0f GiB RAM, %s, kernel %s, %s", m.CPUModel, m.CPUs, m.MemoryGiB, m.OS, m.Kernel, m.Go)
	if m.Postgres != "" {
		s += ", PostgreSQL " + m.Postgres
	}
	if m.NATS != "" {
		s += ", nats-server " + m.NATS + " (embedded in `tokenledger dev`)"
	}
	if m.Wrk != "" {
		s += ", wrk " + m.Wrk
	}
	return s
}
