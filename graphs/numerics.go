package graphs

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

// A training's losses and weights, and an evaluation's probabilities, depend on more than the
// graph and its inputs: on the build of libtensorflow, on the device the ops run on, on how
// many threads split each op's sums, and on the instruction set oneDNN picks its kernels for.
// NumericsEnvironment names each of them on a line of the train and evaluate stages' cache
// keys (docs/pipeline-hcl.md lists them).
//
// Measured on this project's 2-core AVX-512 machine (six Adam steps of a CNN, a ViT and a VGG,
// compared bit for bit): TF_NUM_INTRAOP_THREADS 1, 2 and 3 give three different sets of
// losses (1 is what a process pinned to one core gets), as do ONEDNN_MAX_CPU_ISA=AVX2 and
// TF_ENABLE_ONEDNN_OPTS=0; TF_NUM_INTEROP_THREADS 1, 2 and 7 give the same losses for all
// three networks (each op's result depends on its own kernel and the intra-op pool, not on
// which ops run beside it), so the inter-op count is not part of the key.

// numericsVars are environment variables, read by TensorFlow or oneDNN, that change results
// when set: they appear in keys with their value, and not at all when unset.
var numericsVars = []string{
	"TF_DETERMINISTIC_OPS",       // deterministic kernels (other algorithms on GPU)
	"ONEDNN_MAX_CPU_ISA",         // caps the instruction set oneDNN dispatches on
	"DNNL_MAX_CPU_ISA",           // its older name
	"ONEDNN_DEFAULT_FPMATH_MODE", // lets oneDNN compute float32 ops in bf16 or tf32
	"DNNL_DEFAULT_FPMATH_MODE",   // its older name
}

// IntraOpThreadsVar is the environment variable TensorFlow takes its intra-op thread count
// from when a session's options leave it at 0.
const IntraOpThreadsVar = "TF_NUM_INTRAOP_THREADS"

// Host is where the facts that change TensorFlow's floating-point results come from:
// SystemHost reads this process's, and tests give their own.
type Host struct {
	// Getenv looks up an environment variable, as os.LookupEnv.
	Getenv func(name string) (string, bool)
	// CPUs is the number of CPUs the process may run on (its affinity mask).
	CPUs func() int
	// ISA names the CPU instruction-set tier oneDNN dispatches on (CPUTier).
	ISA func() string
	// Build names the build of libtensorflow the process runs (LibraryBuild).
	Build func() string
	// Accelerators names the accelerators TensorFlow's sessions run ops on, "none" for CPU
	// only (Accelerators).
	Accelerators func() string
}

// SystemHost returns the Host of this process. The library's build and the accelerators are
// found once per process; the rest is read at every call (cheap), since the environment and
// the affinity mask can change.
func SystemHost() Host {
	return Host{Getenv: os.LookupEnv, CPUs: SchedulableCPUs, ISA: CPUTier, Build: LibraryBuild, Accelerators: Accelerators}
}

// NumericsEnvironment returns the cache-key lines of a stage that runs TensorFlow with the
// given intra-op thread count (0: TensorFlow's choice): the library's version and build,
// the oneDNN and thread-pool settings, and SystemHost's NumericsLines.
func NumericsEnvironment(threads int) ([]string, error) {
	host, err := SystemHost().NumericsLines(threads)
	if err != nil {
		return nil, err
	}
	lines := []string{"libtensorflow " + TensorFlowVersion(), "onednn " + OneDNNSetting(), "threadpools " + ThreadPoolsSetting()}
	return append(lines, host...), nil
}

// NumericsLines returns the lines of h that change TensorFlow's results: the library's
// build, the accelerators, the intra-op thread count a session gets when threads is 0 (a
// count the stage sets is in its own attributes), the CPU's instruction-set tier, and the
// numericsVars that are set.
func (h Host) NumericsLines(threads int) ([]string, error) {
	build, acc := h.Build(), ""
	if !strings.HasPrefix(build, Unknown) {
		acc = h.Accelerators()
	}
	for _, v := range []struct{ what, got string }{{"the build of libtensorflow", build}, {"the accelerators TensorFlow runs on", acc}} {
		if why, ok := strings.CutPrefix(v.got, Unknown); ok {
			return nil, fmt.Errorf("cannot tell %s, which the cache keys of the stages that run TensorFlow hold: %s", v.what, why)
		}
	}
	lines := []string{"libtensorflow_build " + build, "accelerators " + acc}
	if threads <= 0 {
		lines = append(lines, fmt.Sprintf("intra_op_threads %d", h.IntraOpThreads()))
	}
	lines = append(lines, "cpu_isa "+h.ISA())
	for _, name := range numericsVars {
		if v, ok := h.Getenv(name); ok {
			lines = append(lines, fmt.Sprintf("setting %s=%q", name, v))
		}
	}
	return lines, nil
}

// IntraOpThreads returns the intra-op thread count TensorFlow gives a session whose options
// leave it at 0, as TensorFlow resolves it: IntraOpThreadsVar when it is a positive whole
// number, else the number of CPUs the process may run on (not the machine's: a process
// pinned to 2 of 8 cores gets 2).
func (h Host) IntraOpThreads() int {
	if v, ok := h.Getenv(IntraOpThreadsVar); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32); err == nil && n > 0 {
			return int(n)
		}
	}
	return h.CPUs()
}

// SchedulableCPUs returns the number of CPUs this process may run on, from its affinity mask
// (sched_getaffinity, as TensorFlow counts them), or runtime.NumCPU when that fails.
func SchedulableCPUs() int {
	var set unix.CPUSet
	// The process's mask (its main thread's), not the calling thread's, which a pinned
	// goroutine's thread may have narrowed.
	if err := unix.SchedGetaffinity(unix.Getpid(), &set); err == nil && set.Count() > 0 {
		return set.Count()
	}
	return runtime.NumCPU()
}

// CPUTier names the instruction set oneDNN dispatches its kernels on for this CPU (on
// x86-64 one of oneDNN's tiers, e.g. avx2, avx512_core_vnni, avx512_core_amx; on arm64 the
// vector extensions its ACL kernels use). TensorFlow's matrix products go through oneDNN even
// with its oneDNN ops off, so the tier matters either way.
func CPUTier() string {
	switch runtime.GOARCH {
	case "amd64", "386":
		return x86Tier(x86Features{
			sse41: cpu.X86.HasSSE41, avx: cpu.X86.HasAVX, avx2: cpu.X86.HasAVX2,
			avxVNNI: cpu.X86.HasAVXVNNI, avxVNNIInt8: cpu.X86.HasAVXVNNIInt8,
			avx512Core: cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512DQ,
			avx512VNNI: cpu.X86.HasAVX512VNNI, avx512BF16: cpu.X86.HasAVX512BF16,
			amx: cpu.X86.HasAMXTile && cpu.X86.HasAMXInt8 && cpu.X86.HasAMXBF16,
		})
	case "arm64":
		return arm64Tier(cpu.ARM64.HasASIMD, cpu.ARM64.HasASIMDDP, cpu.ARM64.HasI8MM, cpu.ARM64.HasSVE, cpu.ARM64.HasSVE2)
	}
	return runtime.GOARCH
}

// x86Features are the x86 extensions oneDNN's tiers are made of.
type x86Features struct {
	sse41, avx, avx2, avxVNNI, avxVNNIInt8, avx512Core, avx512VNNI, avx512BF16, amx bool
}

// x86Tier returns the highest oneDNN tier f supports. (avx2_vnni_2 also needs AVX-NE-CONVERT,
// which golang.org/x/sys/cpu does not report; the CPUs with AVX-VNNI-INT8 have it.)
func x86Tier(f x86Features) string {
	switch {
	case f.avx512Core && f.avx512VNNI && f.avx512BF16 && f.amx:
		return "avx512_core_amx"
	case f.avx512Core && f.avx512VNNI && f.avx512BF16:
		return "avx512_core_bf16"
	case f.avx512Core && f.avx512VNNI:
		return "avx512_core_vnni"
	case f.avx512Core:
		return "avx512_core"
	case f.avx2 && f.avxVNNIInt8:
		return "avx2_vnni_2"
	case f.avx2 && f.avxVNNI:
		return "avx2_vnni"
	case f.avx2:
		return "avx2"
	case f.avx:
		return "avx"
	case f.sse41:
		return "sse41"
	}
	return "x86"
}

// arm64Tier lists the arm64 vector extensions present among those oneDNN's ACL kernels
// choose between.
func arm64Tier(asimd, dotprod, i8mm, sve, sve2 bool) string {
	var out []string
	for _, f := range []struct {
		on   bool
		name string
	}{{asimd, "asimd"}, {dotprod, "dotprod"}, {i8mm, "i8mm"}, {sve, "sve"}, {sve2, "sve2"}} {
		if f.on {
			out = append(out, f.name)
		}
	}
	if len(out) == 0 {
		return "arm64"
	}
	return strings.Join(out, "+")
}

// LibraryBuild names the build of libtensorflow this process runs, found once per process
// (libraryBuild); an identity that could not be found (Unknown) is looked for again at the
// next call, so one failure does not stay for a long-lived process such as the scheduler.
func LibraryBuild() string { return libraryBuildCache.get(libraryBuild) }

// Accelerators names the accelerators TensorFlow's sessions in this process run ops on, found
// once per process as LibraryBuild is: "none" for a CPU-only build without loading it, else
// what a session lists (accelerators).
func Accelerators() string {
	return acceleratorsCache.get(func() string {
		return accelerators(LibraryBuild(), sessionDevices, os.LookupEnv, nvidiaModels)
	})
}

var libraryBuildCache, acceleratorsCache foundOnce

// foundOnce keeps the first value found that is not Unknown.
type foundOnce struct {
	mu    sync.Mutex
	value string
}

func (f *foundOnce) get(find func() string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.value == "" {
		if v := find(); !strings.HasPrefix(v, Unknown) {
			f.value = v
		} else {
			return v
		}
	}
	return f.value
}

// Unknown begins what LibraryBuild and Accelerators return when they could not find what
// they name, followed by why. It never goes into a key (NumericsLines fails instead): a key
// holding an error message would change with the message and rerun every stage.
const Unknown = "unknown: "
