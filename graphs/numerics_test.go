package graphs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeHost is a Host whose facts are fields.
type fakeHost struct {
	env                 map[string]string
	cpus                int
	isa, build, devices string
}

func (f fakeHost) host() Host {
	return Host{
		Getenv:       func(n string) (string, bool) { v, ok := f.env[n]; return v, ok },
		CPUs:         func() int { return f.cpus },
		ISA:          func() string { return f.isa },
		Build:        func() string { return f.build },
		Accelerators: func() string { return f.devices },
	}
}

func baseHost() fakeHost {
	return fakeHost{env: map[string]string{}, cpus: 8, isa: "avx2", build: "wheel tensorflow_cpu-2.18.1-x.whl " + strings.Repeat("a", 64), devices: "none"}
}

// The key lines change with each fact that changes TensorFlow's results, and only with those:
// two hosts with the same facts give the same lines.
func TestNumericsLinesFollowWhatChangesResults(t *testing.T) {
	base := mustLines(t, baseHost().host(), 0)
	if again := mustLines(t, baseHost().host(), 0); !slices.Equal(base, again) {
		t.Fatalf("the same host gave %q, then %q", base, again)
	}
	want := []string{
		"libtensorflow_build wheel tensorflow_cpu-2.18.1-x.whl " + strings.Repeat("a", 64),
		"accelerators none", "intra_op_threads 8", "cpu_isa avx2",
	}
	if !slices.Equal(base, want) {
		t.Fatalf("lines %q, want %q", base, want)
	}
	withEnv := func(kv ...string) func(*fakeHost) {
		return func(f *fakeHost) {
			for i := 0; i < len(kv); i += 2 {
				f.env[kv[i]] = kv[i+1]
			}
		}
	}
	for _, c := range []struct {
		name    string
		change  func(*fakeHost)
		changed bool
	}{
		{"other core count", func(f *fakeHost) { f.cpus = 4 }, true},
		{"intra-op threads set to the core count", withEnv(IntraOpThreadsVar, "8"), false},
		{"intra-op threads set to another count", withEnv(IntraOpThreadsVar, "2"), true},
		{"intra-op threads not a number", withEnv(IntraOpThreadsVar, "many"), false},
		{"intra-op threads 0", withEnv(IntraOpThreadsVar, "0"), false},
		{"inter-op threads (measured not to matter)", withEnv("TF_NUM_INTEROP_THREADS", "1"), false},
		{"CPU tier", func(f *fakeHost) { f.isa = "avx512_core_vnni" }, true},
		{"oneDNN capped", withEnv("ONEDNN_MAX_CPU_ISA", "AVX2"), true},
		{"oneDNN capped, old name", withEnv("DNNL_MAX_CPU_ISA", "AVX2"), true},
		{"oneDNN in bf16", withEnv("ONEDNN_DEFAULT_FPMATH_MODE", "BF16"), true},
		{"deterministic ops", withEnv("TF_DETERMINISTIC_OPS", "1"), true},
		{"CUDA wheel", func(f *fakeHost) { f.build = "wheel tensorflow-2.18.1-x.whl " + strings.Repeat("b", 64) }, true},
		{"a GPU", func(f *fakeHost) { f.devices = "GPU:0 (NVIDIA L4)" }, true},
		{"an unrelated variable", withEnv("HOME", "/elsewhere"), false},
	} {
		f := baseHost()
		c.change(&f)
		got := mustLines(t, f.host(), 0)
		if c.changed == slices.Equal(got, base) {
			t.Errorf("%s: lines %q (base %q), want them changed: %v", c.name, got, base, c.changed)
		}
	}
}

// Threads = 0 resolves as TensorFlow resolves it: the variable when it is a positive number,
// else the CPUs the process may use.
func TestIntraOpThreadsResolvesAsTensorFlow(t *testing.T) {
	for v, want := range map[string]int{"": 6, "3": 3, " 12 ": 12, "0": 6, "-2": 6, "x": 6} {
		f := fakeHost{env: map[string]string{}, cpus: 6}
		if v != "" {
			f.env[IntraOpThreadsVar] = v
		}
		if got := f.host().IntraOpThreads(); got != want {
			t.Errorf("%s=%q: %d threads, want %d", IntraOpThreadsVar, v, got, want)
		}
	}
}

// SchedulableCPUs counts the process's affinity mask (its main thread's, which threads the
// process starts inherit), not the machine's CPUs: a process pinned to one core sees one,
// whichever thread asks.
func TestSchedulableCPUsFollowsTheAffinityMask(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: pinning changes nothing")
	}
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(unix.Getpid(), &saved); err != nil {
		t.Skip(err)
	}
	if got := SchedulableCPUs(); got != saved.Count() {
		t.Errorf("SchedulableCPUs %d, affinity mask has %d", got, saved.Count())
	}
	var one unix.CPUSet
	for c := 0; c < 1024; c++ {
		if saved.IsSet(c) {
			one.Set(c)
			break
		}
	}
	if err := unix.SchedSetaffinity(unix.Getpid(), &one); err != nil {
		t.Skip(err)
	}
	defer unix.SchedSetaffinity(unix.Getpid(), &saved)
	if got := SchedulableCPUs(); got != 1 {
		t.Errorf("pinned to one CPU: SchedulableCPUs %d", got)
	}
}

func TestX86Tier(t *testing.T) {
	for _, c := range []struct {
		f    x86Features
		want string
	}{
		{x86Features{sse41: true}, "sse41"},
		{x86Features{sse41: true, avx: true, avx2: true}, "avx2"},
		{x86Features{avx: true, avx2: true, avxVNNI: true}, "avx2_vnni"},
		{x86Features{avx2: true, avx512Core: true}, "avx512_core"},
		{x86Features{avx2: true, avx512Core: true, avx512VNNI: true}, "avx512_core_vnni"},
		{x86Features{avx2: true, avx512Core: true, avx512VNNI: true, avx512BF16: true}, "avx512_core_bf16"},
		{x86Features{avx2: true, avx512Core: true, avx512VNNI: true, avx512BF16: true, amx: true}, "avx512_core_amx"},
		{x86Features{avx2: true, avx512VNNI: true}, "avx2"}, // VNNI without the AVX-512 core
	} {
		if got := x86Tier(c.f); got != c.want {
			t.Errorf("%+v: %s, want %s", c.f, got, c.want)
		}
	}
	if got := arm64Tier(true, true, false, true, false); got != "asimd+dotprod+sve" {
		t.Errorf("arm64: %s", got)
	}
	if tier := CPUTier(); tier == "" {
		t.Error("CPUTier is empty on this machine")
	}
}

func TestStampIdentity(t *testing.T) {
	cpuSum, gpuSum := strings.Repeat("1", 64), strings.Repeat("2", 64)
	cpu := "wheel:tensorflow_cpu-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl:" + cpuSum
	gpu := "wheel:tensorflow-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl:" + gpuSum
	for stamp, want := range map[string]string{
		cpu + "\n":                               "wheel tensorflow_cpu-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl " + cpuSum,
		cpu + ":shim:" + strings.Repeat("3", 64): "wheel tensorflow_cpu-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl " + cpuSum,
		gpu:                                      "wheel tensorflow-2.18.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl " + gpuSum,
		"tarball:https://h/x/lib.tar.gz:" + cpuSum:   "tarball " + cpuSum,
		"tarball:/a/b.tar.gz:" + cpuSum + ":shim:ab": "tarball " + cpuSum,
		"tarball:/a/b.tar.gz:":                       "",
		"":                                           "",
		"garbage":                                    "",
		"wheel:x.whl:nothex":                         "",
	} {
		got, ok := stampIdentity(stamp)
		if got != want || ok != (want != "") {
			t.Errorf("stamp %q: %q %v, want %q", stamp, got, ok, want)
		}
	}
}

// A library given another way than the install (or an install that does not say what it is)
// is named by the digests of the files loaded; a stamp that says it is enough otherwise.
func TestBuildIdentityFallsBackToTheLoadedFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "libtensorflow_cc.so.2"), filepath.Join(dir, "libtensorflow_framework.so.2")
	os.WriteFile(a, []byte("cc"), 0o644)
	os.WriteFile(b, []byte("framework"), 0o644)
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	files := func() ([]string, error) { return []string{b, a}, nil }
	noLoad := func() ([]string, error) { t.Error("loaded the library although the stamp names it"); return nil, nil }
	stamp := "wheel:tensorflow_cpu-2.18.1-x.whl:" + strings.Repeat("1", 64)

	if got := buildIdentity(stamp, "", noLoad); got != "wheel tensorflow_cpu-2.18.1-x.whl "+strings.Repeat("1", 64) {
		t.Errorf("installed wheel: %q", got)
	}
	want := "files libtensorflow_cc.so.2 " + sum("cc") + " libtensorflow_framework.so.2 " + sum("framework")
	if got := buildIdentity(stamp, "/opt/tf/libtensorflow_cc.so.2", files); got != want {
		t.Errorf("with %s: %q, want %q", LibraryVar, got, want)
	}
	if got := buildIdentity("", "", files); got != want {
		t.Errorf("without a stamp: %q, want %q", got, want)
	}
	os.WriteFile(b, []byte("framework, rebuilt"), 0o644)
	if got := buildIdentity("", "", files); got == want {
		t.Errorf("another framework library gave the same identity %q", got)
	}
	failed := func() ([]string, error) { return nil, errors.New("cannot load x") }
	if got := buildIdentity("", "x", failed); got != "unknown: cannot load x" {
		t.Errorf("unloadable: %q", got)
	}
}

func TestLibraryFilesOfMaps(t *testing.T) {
	maps := `7f0000000000-7f0000001000 r--p 00000000 08:01 1234 /opt/tf/lib/libtensorflow.so
7f0000001000-7f0000002000 r-xp 00001000 08:01 1234 /opt/tf/lib/libtensorflow.so
7f0000002000-7f0000003000 r--p 00000000 08:01 1235 /opt/tf/lib/libtensorflow_cc.so.2
7f0000003000-7f0000004000 r-xp 00001000 08:01 1235 /opt/tf/lib/libtensorflow_cc.so.2
7f0000004000-7f0000005000 r--p 00000000 08:01 1236 /opt/my tf/libtensorflow_framework.so.2 (deleted)
7f0000005000-7f0000006000 r--p 00000000 08:01 1237 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000006000-7f0000007000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0                          [stack]
`
	got, err := libraryFilesOfMaps(strings.NewReader(maps), "/opt/tf/lib/libtensorflow.so")
	want := []string{"/opt/tf/lib/libtensorflow_cc.so.2", "/opt/my tf/libtensorflow_framework.so.2"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q %v, want %q", got, err, want)
	}
}

// A CPU-only wheel has no accelerators, whatever CUDA_VISIBLE_DEVICES says, and is not loaded
// to find out; another build lists what a session sees, with the variables that choose it.
func TestAccelerators(t *testing.T) {
	env := map[string]string{}
	getenv := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	models := func() []string { return []string{"NVIDIA L4"} }
	noDevices := func() ([]string, error) { t.Error("listed the devices of a CPU-only build"); return nil, nil }
	env["CUDA_VISIBLE_DEVICES"] = "0"
	if got := accelerators("wheel tensorflow_cpu-2.18.1-x.whl s", noDevices, getenv, models); got != "none" {
		t.Errorf("CPU wheel: %q", got)
	}
	cuda := "wheel tensorflow-2.18.1-x.whl s"
	none := func() ([]string, error) { return nil, nil }
	if got := accelerators(cuda, none, getenv, models); got != "none" {
		t.Errorf("CUDA wheel, no GPU listed: %q", got)
	}
	gpu := func() ([]string, error) { return []string{"GPU:0"}, nil }
	one := accelerators(cuda, gpu, getenv, models)
	if one != `GPU:0 (NVIDIA L4); CUDA_VISIBLE_DEVICES="0"` {
		t.Errorf("CUDA wheel with a GPU: %q", one)
	}
	if again := accelerators(cuda, gpu, getenv, models); again != one {
		t.Errorf("the same GPU gave %q, then %q", one, again)
	}
	env["CUDA_VISIBLE_DEVICES"] = "1"
	if other := accelerators(cuda, gpu, getenv, models); other == one {
		t.Errorf("another visible GPU gave the same line %q", other)
	}
	env["NVIDIA_TF32_OVERRIDE"] = "0"
	if got := accelerators(cuda, gpu, getenv, models); !strings.Contains(got, `NVIDIA_TF32_OVERRIDE="0"`) {
		t.Errorf("TF32 switched off: %q", got)
	}
}

// On this machine: the build is named from the install's stamp beside the linked library,
// and a session lists the devices (none but CPUs without a GPU).
func TestLibraryBuildOfThisProcess(t *testing.T) {
	linked := linkedLibrary()
	if linked == "" {
		t.Fatal("no linked libtensorflow found through TF_Version")
	}
	stamp, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(linked)), installStamp))
	if err != nil {
		t.Skipf("no install stamp beside %s: %v", linked, err)
	}
	want, ok := stampIdentity(string(stamp))
	if !ok {
		t.Skipf("the stamp %q does not name the build", stamp)
	}
	if _, set := os.LookupEnv(LibraryVar); !set {
		if got := LibraryBuild(); got != want {
			t.Errorf("LibraryBuild %q, stamp says %q", got, want)
		}
	}
	ds, err := sessionDevices()
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(want, "wheel tensorflow_cpu-") && len(ds) != 0 {
		t.Errorf("a CPU-only build lists %q", ds)
	}
}

// buildHelperVar makes the test binary print LibraryBuild and exit.
const buildHelperVar = "GRAPHS_TEST_BUILD_HELPER"

// With the lazy shim pointed at a library by path, the build is named by the files that
// loaded: the library and its framework library, each by its SHA-256, not the shim.
func TestLibraryBuildOfAnotherLibrary(t *testing.T) {
	if !lazyShim() {
		t.Skip("libtensorflow is linked directly: the shim's variable does not apply")
	}
	if testing.Short() {
		t.Skip("hashes the whole library (-short)")
	}
	dir := filepath.Dir(linkedLibrary())
	real := filepath.Join(dir, "libtensorflow_cc.so.2")
	framework := filepath.Join(dir, "libtensorflow_framework.so.2")
	if _, err := os.Stat(real); err != nil {
		t.Skipf("no wheel install beside the shim: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), buildHelperVar+"=1", LibraryVar+"="+real)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	line := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^files libtensorflow_cc\.so\.2 [0-9a-f]{64} libtensorflow_framework\.so\.2 [0-9a-f]{64}$`).MatchString(line) {
		t.Fatalf("LibraryBuild with %s=%s: %q", LibraryVar, real, line)
	}
	b, err := os.ReadFile(framework)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if !strings.HasSuffix(line, " "+hex.EncodeToString(sum[:])) {
		t.Errorf("%q does not end with the framework library's SHA-256", line)
	}
}

// A stage that sets its thread count does not depend on the machine's: its lines leave the
// resolved count out, so another core count keeps its key.
func TestSetThreadsLeaveTheCoreCountOut(t *testing.T) {
	f, g := baseHost(), baseHost()
	g.cpus = f.cpus + 3
	if a, b := mustLines(t, f.host(), 4), mustLines(t, g.host(), 4); !slices.Equal(a, b) {
		t.Errorf("threads = 4: lines %q and %q differ with the core count", a, b)
	}
	if a, b := mustLines(t, f.host(), 0), mustLines(t, g.host(), 0); slices.Equal(a, b) {
		t.Errorf("threads = 0: lines %q the same for %d and %d cores", a, f.cpus, g.cpus)
	}
}

// mustLines returns h's NumericsLines for threads, failing the test on an error.
func mustLines(t *testing.T, h Host, threads int) []string {
	t.Helper()
	lines, err := h.NumericsLines(threads)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// A build or accelerators that cannot be found fail the key instead of going into it with
// the error's text, which would rerun every stage when the message changes.
func TestUnknownHostFactsFailTheKey(t *testing.T) {
	for _, c := range []func(*fakeHost){
		func(f *fakeHost) { f.build = Unknown + "reading /proc/self/maps: no such file" },
		func(f *fakeHost) { f.build, f.devices = "wheel tensorflow-2.18.1-x.whl s", Unknown+"no session" },
	} {
		f := baseHost()
		c(&f)
		if lines, err := f.host().NumericsLines(0); err == nil || !strings.Contains(err.Error(), "cannot tell") {
			t.Errorf("build %q, devices %q: lines %q, error %v", f.build, f.devices, lines, err)
		}
	}
}

// A fact found is kept for the process; one that could not be found is looked for again.
func TestFoundOnceRetriesUnknown(t *testing.T) {
	var f foundOnce
	calls := 0
	find := func(v string) func() string { return func() string { calls++; return v } }
	if got := f.get(find(Unknown + "busy")); got != Unknown+"busy" {
		t.Fatalf("first: %q", got)
	}
	if got := f.get(find("GPU:0")); got != "GPU:0" {
		t.Fatalf("second: %q", got)
	}
	if got := f.get(find("GPU:1")); got != "GPU:0" || calls != 2 {
		t.Fatalf("third: %q after %d calls, want the value found kept", got, calls)
	}
}
