// Command planprobe runs what `pipeline plan FILE` runs (load and build the workflow, open the
// store, Engine.Plan) in-process, -n times, and reports where the time goes: per-phase wall
// times, the number of files actually read and hashed (StatCache.Hashed), and optionally a CPU
// profile. It changes nothing in the engine; it only calls its exported API.
//
//	go build -o /tmp/planbench/bin/planprobe ./tools/bench/plan/planprobe
//	planprobe -n 10 -cpuprofile /tmp/plan.pprof /tmp/planbench/pipeline/pipeline.hcl
//	go tool pprof -top -cum /tmp/planbench/bin/planprobe /tmp/plan.pprof
//
// Phases of one iteration, each timed separately:
//
//	load     LoadFile + Build (HCL parsing and evaluation)
//	open     OpenStore (reading data/intermediate/statcache)
//	plan     Engine.Plan (hash the sources, read state and key entry, verify outputs, save
//	         the stat cache if it changed)
//
// With -statcache it only describes the stat cache file (entries, entries under the store's
// tmp/, entries whose file no longer exists) and exits.
//
// With -phases, Plan's own parts are then timed once each on a freshly opened store, through
// the same exported calls Plan makes: HashTree(source), LoadState, Lookup(key), Verify(entry).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"pipeline/pipeline"
	"pipeline/stages"
)

type iteration struct {
	Load, Open, Plan, Total float64 // seconds
	Hashed                  int64
	Pending                 bool
}

func main() {
	n := flag.Int("n", 5, "iterations")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of all iterations here")
	phases := flag.Bool("phases", false, "also time Plan's parts (HashTree, LoadState, Lookup, Verify) once")
	source := flag.String("source", "data/raw", "the split stage's source, relative to the workspace (for -phases)")
	asJSON := flag.Bool("json", false, "print JSON instead of text")
	inspect := flag.Bool("statcache", false, "only describe data/intermediate/statcache (entries, dead ones) and exit")
	flag.Parse()
	if flag.NArg() != 1 {
		fail(fmt.Errorf("usage: planprobe [flags] PIPELINE.hcl"))
	}
	hclPath, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	ws := filepath.Dir(hclPath)
	if *inspect {
		enc := json.NewEncoder(os.Stdout)
		enc.Encode(describeStatCache(ws))
		return
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}

	var its []iteration
	var last []*pipeline.Decision
	var lastStore *pipeline.Store
	for i := 0; i < *n; i++ {
		var it iteration
		t0 := time.Now()
		reg, err := pipeline.NewRegistry(stages.Split{}, stages.Augment{}, stages.Train{}, stages.Evaluate{}, stages.Select{})
		if err != nil {
			fail(err)
		}
		cfg, diags := pipeline.LoadFile(hclPath, reg)
		if diags.HasErrors() {
			fail(diags)
		}
		wf, diags := pipeline.Build(cfg, reg, nil)
		if diags.HasErrors() {
			fail(diags)
		}
		t1 := time.Now()
		store, err := pipeline.OpenStore(ws)
		if err != nil {
			fail(err)
		}
		t2 := time.Now()
		plan, err := (&pipeline.Engine{Workflow: wf, Store: store}).Plan(pipeline.Selection{})
		if err != nil {
			fail(err)
		}
		t3 := time.Now()
		it.Load, it.Open, it.Plan, it.Total = t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), t3.Sub(t2).Seconds(), t3.Sub(t0).Seconds()
		it.Hashed = store.Stats.Hashed
		for _, d := range plan {
			if d.Action == pipeline.Run {
				it.Pending = true
			}
		}
		its = append(its, it)
		last, lastStore = plan, store
	}

	res := map[string]any{"iterations": its}
	med := map[string]float64{}
	for _, f := range []string{"load", "open", "plan", "total"} {
		var xs []float64
		for _, it := range its {
			xs = append(xs, map[string]float64{"load": it.Load, "open": it.Open, "plan": it.Plan, "total": it.Total}[f])
		}
		med[f] = median(xs)
	}
	res["median"] = med
	var decisions []map[string]any
	for _, d := range last {
		decisions = append(decisions, map[string]any{"stage": d.Addr, "action": d.Action, "reasons": d.Reasons})
	}
	res["decisions"] = decisions

	if *phases && len(last) > 0 {
		ph := map[string]any{}
		store, err := pipeline.OpenStore(ws)
		if err != nil {
			fail(err)
		}
		t := time.Now()
		if _, err := store.Stats.QuickManifest(filepath.Join(ws, *source)); err != nil {
			fail(err)
		}
		ph["hashtree_s"] = time.Since(t).Seconds()
		// The source's size, from a complete manifest (not timed).
		m, err := store.Stats.HashTree(filepath.Join(ws, *source))
		if err != nil {
			fail(err)
		}
		ph["source_files"] = len(m.Files)
		var srcBytes int64
		for _, s := range m.Sizes {
			srcBytes += s
		}
		ph["source_bytes"] = srcBytes
		d := last[0]
		t = time.Now()
		_, _ = store.LoadState(d.Addr)
		ph["loadstate_s"] = time.Since(t).Seconds()
		if d.Key != "" {
			t = time.Now()
			e, ok := store.Lookup(d.Key)
			ph["lookup_s"] = time.Since(t).Seconds()
			if ok {
				t = time.Now()
				problem := store.Verify(e)
				ph["verify_s"] = time.Since(t).Seconds()
				ph["verify_problem"] = problem
				// The output's size, from a walk of it (not timed).
				out, err := store.Stats.HashTree(filepath.Join(ws, pipeline.ObjectRel(e.Output.Digest)))
				if err != nil {
					fail(err)
				}
				var outBytes int64
				for _, s := range out.Sizes {
					outBytes += s
				}
				ph["output_files"] = len(out.Files)
				ph["output_bytes"] = outBytes
			}
		}
		ph["hashed"] = store.Stats.Hashed
		res["phases"] = ph
	}
	_ = lastStore

	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	for i, it := range its {
		fmt.Printf("iter %d: load %.3fs open %.3fs plan %.3fs total %.3fs hashed %d pending %v\n", i, it.Load, it.Open, it.Plan, it.Total, it.Hashed, it.Pending)
	}
	fmt.Printf("median: load %.3fs open %.3fs plan %.3fs total %.3fs\n", med["load"], med["open"], med["plan"], med["total"])
	for _, d := range decisions {
		fmt.Printf("%v %v %v\n", d["stage"], d["action"], d["reasons"])
	}
	if ph, ok := res["phases"].(map[string]any); ok {
		keys := make([]string, 0, len(ph))
		for k := range ph {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("phase %s: %v\n", k, ph[k])
		}
	}
}

// describeStatCache counts the entries of the workspace's stat cache, those for paths under the
// store's tmp/ (where outputs are written before publishing) and those whose file is gone.
func describeStatCache(ws string) map[string]any {
	path := filepath.Join(ws, pipeline.StoreDir, pipeline.StatCacheFile)
	out := map[string]any{"path": path}
	fi, err := os.Stat(path)
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	out["bytes"] = fi.Size()
	paths := pipeline.OpenStatCache(path).Paths()
	tmp := filepath.Join(ws, pipeline.StoreDir, "tmp") + string(filepath.Separator)
	inTmp, missing := 0, 0
	for _, p := range paths {
		if strings.HasPrefix(p, tmp) {
			inTmp++
		}
		if _, err := os.Lstat(p); err != nil {
			missing++
		}
	}
	out["entries"], out["in_store_tmp"], out["missing"] = len(paths), inTmp, missing
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "planprobe:", err)
	os.Exit(1)
}
