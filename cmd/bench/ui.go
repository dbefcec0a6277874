package main

import "fmt"

// specUIList renders the web UI's token list of 10,000 tokens.
var specUIList = goBenchSpec{pkg: "./ui", pattern: "^BenchmarkListPage10000$", cpus: []int{2}}

// targetUIListMS is the bound the list page must stay well under.
const targetUIListMS = 100

// uiListRow is the web UI's server-side render of a 10,000-token list.
func (r results) uiListRow() row {
	const name = "BenchmarkListPage10000"
	nsop := r.goMetric(r.UIList, name, 2, "ns/op")
	cpu := r.goMetric(r.UIList, name, 2, "cpu-ms/op")
	out := row{
		Figure:   "web UI token list page of 10,000 tokens, rendered server-side (`BenchmarkListPage10000`)",
		Target:   fmt.Sprintf("well under %d ms", targetUIListMS),
		Measured: fmt.Sprintf("**%s** per page (%s ms of CPU)", spread(nsop, fmtNS), spread(cpu, fmtFloat)),
		Command:  "`" + r.GoCommands["ui_list"] + "`",
	}
	if v := nsop.median(); v > targetUIListMS*1e6 {
		out.Misses = append(out.Misses, fmt.Sprintf("%s > %d ms", fmtNS(v), targetUIListMS))
	}
	out, _ = unmeasured(out, len(nsop) > 0)
	return out
}
