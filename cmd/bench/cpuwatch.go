package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc's CPU times (100
// on every Linux platform Go supports).
const clockTicks = 100

// cpuWatch measures, once a second, how much CPU the processes that are
// not the bench's used: everything the machine ran besides this program,
// its descendants and the processes holding its work directory in their
// command line (the DRF peer's PostgreSQL, which pg_ctl detaches). The
// figures share the machine's cores with whatever that was.
type cpuWatch struct {
	self    int
	workDir string
	stop    chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	samples []float64   // cores used by other processes, per interval
	ends    []time.Time // the end of each interval
}

// startCPUWatch starts sampling; stop ends it.
func startCPUWatch(workDir string) *cpuWatch {
	w := &cpuWatch{self: os.Getpid(), workDir: workDir, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *cpuWatch) run() {
	defer close(w.done)
	prevBusy, prevAt := machineBusy(), time.Now()
	prevOwn := w.ownTimes()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		busy, at := machineBusy(), time.Now()
		own := w.ownTimes()
		elapsed := at.Sub(prevAt).Seconds()
		if elapsed > 0 && busy >= prevBusy {
			others := ((busy - prevBusy) - ownDelta(prevOwn, own)) / clockTicks / elapsed
			w.mu.Lock()
			w.samples = append(w.samples, max(others, 0))
			w.ends = append(w.ends, at)
			w.mu.Unlock()
		}
		prevBusy, prevAt, prevOwn = busy, at, own
	}
}

// stopped reports whether result was called.
func (w *cpuWatch) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// result stops the watch and returns the average cores other processes
// used over the run, and the most they used over any ten seconds. It logs
// the seconds in which they used more than half a core, for telling which
// figures they may have disturbed.
func (w *cpuWatch) result() (avg, peak float64) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == 0 {
		return 0, 0
	}
	var busy []string
	for i, s := range w.samples {
		if s > 0.5 {
			busy = append(busy, fmt.Sprintf("%s %.1f", w.ends[i].Format("15:04:05"), s))
		}
	}
	if len(busy) > 0 {
		logf("other processes used more than half a core in %d of %d seconds: %s", len(busy), len(w.samples), strings.Join(busy, ", "))
	}
	var sum float64
	for _, s := range w.samples {
		sum += s
	}
	const window = 10
	for i := range w.samples {
		var ws float64
		n := 0
		for j := i; j < len(w.samples) && j < i+window; j++ {
			ws += w.samples[j]
			n++
		}
		if n == window || len(w.samples) < window {
			peak = max(peak, ws/float64(n))
		}
	}
	return sum / float64(len(w.samples)), peak
}

// machineBusy returns the machine's busy CPU time from /proc/stat, in
// ticks.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	// user nice system idle iowait irq softirq steal: all but idle and
	// iowait.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy
}

// ownProc is one of the bench's live processes: its parent and its CPU
// time in ticks, its own (user + system) and that of the children it has
// waited for.
type ownProc struct {
	ppid  int
	ticks float64
}

// ownDelta is the CPU time the bench's processes used between two
// samples. A process's time counts from zero when it is new. When a
// process ended and its parent, one of the bench's, waited for it, the
// parent's time grew by the child's whole time, of which the earlier
// samples counted the part up to the last one: that part is taken off.
// A process that ended without such a parent (the DRF peer's PostgreSQL,
// which pg_ctl detaches) just stops counting.
func ownDelta(prev, cur map[int]ownProc) float64 {
	var d float64
	for pid, p := range cur {
		d += p.ticks - prev[pid].ticks
	}
	for pid, p := range prev {
		if _, alive := cur[pid]; alive {
			continue
		}
		if _, ok := cur[p.ppid]; ok {
			d -= p.ticks
		}
	}
	return d
}

// ownTimes samples the bench's live processes: this one, its descendants,
// and the processes holding the work directory in their command line,
// with theirs.
func (w *cpuWatch) ownTimes() map[int]ownProc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	type procInfo struct {
		ownProc
		mine bool
	}
	all := map[int]procInfo{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold anything.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 15 {
			continue
		}
		p := procInfo{mine: pid == w.self}
		p.ppid, _ = strconv.Atoi(f[1])
		// utime, stime, cutime, cstime
		for _, v := range f[11:15] {
			n, _ := strconv.ParseFloat(v, 64)
			p.ticks += n
		}
		if !p.mine {
			if cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(cmd, []byte(w.workDir)) {
				p.mine = true
			}
		}
		all[pid] = p
	}
	own := map[int]ownProc{}
	for pid, p := range all {
		for q, hops := p, 0; hops < 64; hops++ {
			if q.mine {
				own[pid] = p.ownProc
				break
			}
			next, ok := all[q.ppid]
			if !ok {
				break
			}
			q = next
		}
	}
	return own
}
