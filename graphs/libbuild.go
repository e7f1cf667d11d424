package graphs

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

// linked_library returns the path of the libtensorflow the binary links (the lazy shim, or
// the library itself), through the object that defines TF_Version; NULL when none does.
static const char *linked_library(void) {
	void *f = dlsym(RTLD_DEFAULT, "TF_Version");
	Dl_info info;
	if (f == NULL || dladdr(f, &info) == 0) return NULL;
	return info.dli_fname;
}
*/
import "C"

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	cfgpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
)

// The version TF_Version reports does not tell two builds of it apart: tools/
// install-libtensorflow.sh installs PyPI's tensorflow-cpu wheel by default and its CUDA
// wheel (tensorflow) with LIBTENSORFLOW_PACKAGE=tensorflow, both 2.18.1, and
// PIPELINE_LIBTENSORFLOW can point the lazy shim at any other library. The binary finds
// libtensorflow through its rpath: the directory of the libtensorflow.so it links holds the
// install, and the install's .installed, one directory up, names the wheel and its sha256.

// LibraryVar is the environment variable that makes the lazy shim load another library than
// the one installed beside it (tools/libtensorflow-shim.sh).
const LibraryVar = "PIPELINE_LIBTENSORFLOW"

// installStamp is the file install-libtensorflow.sh writes at the top of an install.
const installStamp = ".installed"

// libraryBuild names the build of libtensorflow this process runs: the wheel and its sha256
// (or the tarball's sha256) from the install's stamp, or, when the library comes from
// elsewhere (LibraryVar, an install without a stamp or a tarball without a checksum), the
// SHA-256 of every libtensorflow file loaded.
func libraryBuild() string {
	linked := linkedLibrary()
	override := ""
	if lazyShim() { // the variable means nothing to a library linked directly
		override = os.Getenv(LibraryVar)
	}
	stamp := ""
	if linked != "" {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(linked)), installStamp)); err == nil {
			stamp = string(b)
		}
	}
	return buildIdentity(stamp, override, func() ([]string, error) { return loadedLibraryFiles(linked) })
}

// linkedLibrary returns the path of the libtensorflow.so the binary links (the lazy shim, or
// the library itself) as the dynamic loader found it; "" when none is.
func linkedLibrary() string {
	if p := C.linked_library(); p != nil {
		return C.GoString(p)
	}
	return ""
}

// buildIdentity names a build from an install's stamp (stampIdentity) unless override names
// another library or the stamp says too little, and else from the libtensorflow files that
// loaded returns once the library is loaded (filesIdentity).
func buildIdentity(stamp, override string, loaded func() ([]string, error)) string {
	if override == "" {
		if id, ok := stampIdentity(stamp); ok {
			return id
		}
	}
	files, err := loaded()
	if err == nil {
		var id string
		if id, err = filesIdentity(files); err == nil {
			return id
		}
	}
	return Unknown + err.Error()
}

// shimSuffix ends a stamp of an install with the lazy shim, whose code does not change
// results.
var shimSuffix = regexp.MustCompile(`:shim:[0-9a-f]*$`)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// stampIdentity reads an install's stamp: "wheel:NAME:SHA256" gives "wheel NAME SHA256",
// "tarball:PATH:SHA256" gives "tarball SHA256" (where it was is no part of what it is); false
// for anything else, such as a tarball installed without LIBTENSORFLOW_SHA256.
func stampIdentity(stamp string) (string, bool) {
	s := shimSuffix.ReplaceAllString(strings.TrimSpace(stamp), "")
	kind, rest, _ := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if i < 0 || !sha256Hex.MatchString(rest[i+1:]) {
		return "", false
	}
	name, sum := rest[:i], rest[i+1:]
	switch {
	case kind == "wheel" && name != "" && !strings.ContainsAny(name, " /"):
		return "wheel " + name + " " + sum, true
	case kind == "tarball":
		return "tarball " + sum, true
	}
	return "", false
}

// filesIdentity names files by their base names and the SHA-256 of their content, in the
// order of their names.
func filesIdentity(paths []string) (string, error) {
	if len(paths) == 0 {
		return "", errors.New("no libtensorflow file is loaded")
	}
	paths = slices.Clone(paths)
	slices.SortFunc(paths, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	parts := []string{"files"}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		parts = append(parts, filepath.Base(p), hex.EncodeToString(h.Sum(nil)))
	}
	return strings.Join(parts, " "), nil
}

// loadedLibraryFiles loads libtensorflow if it is not yet, and returns the files of it the
// process has mapped (/proc/self/maps names them with symbolic links resolved): every
// mapped file whose name starts with libtensorflow, except the lazy shim linked at path
// linked.
func loadedLibraryFiles(linked string) ([]string, error) {
	if err := LoadTensorFlow(); err != nil {
		return nil, err
	}
	shim := ""
	if lazyShim() && linked != "" {
		shim, _ = filepath.EvalSymlinks(linked)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return libraryFilesOfMaps(f, shim)
}

// libraryFilesOfMaps returns the distinct libtensorflow files that the maps listing r (the
// format of /proc/PID/maps) names, except skip.
func libraryFilesOfMaps(r io.Reader, skip string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// address perms offset dev inode path (the path may hold spaces)
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) < 6 {
			continue
		}
		p := strings.TrimSuffix(strings.TrimSpace(fields[5]), " (deleted)")
		if strings.HasPrefix(p, "/") && strings.HasPrefix(filepath.Base(p), "libtensorflow") && p != skip && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}

// accelerators names the accelerators sessions run ops on: "none" for a build known to be
// CPU-only (PyPI's tensorflow-cpu wheel) without loading the library; else the non-CPU
// devices a session lists (devices), with the GPU models the driver reports (models) and
// the variables that choose GPUs or their precision, or "none" when it lists none. The
// devices' memory is left out: TensorFlow sizes it from what is free at the time.
func accelerators(build string, devices func() ([]string, error), getenv func(string) (string, bool), models func() []string) string {
	if strings.HasPrefix(build, "wheel tensorflow_cpu-") {
		return "none"
	}
	ds, err := devices()
	if err != nil {
		return Unknown + err.Error()
	}
	if len(ds) == 0 {
		return "none"
	}
	s := strings.Join(ds, " ")
	if ms := models(); len(ms) > 0 {
		s += " (" + strings.Join(ms, ", ") + ")"
	}
	for _, v := range []string{"CUDA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE"} {
		if val, ok := getenv(v); ok {
			s += fmt.Sprintf("; %s=%q", v, val)
		}
	}
	return s
}

// sessionDevices loads libtensorflow and returns the devices other than CPUs that a session
// lists, as TYPE:N (GPU:0).
func sessionDevices() ([]string, error) {
	if err := LoadTensorFlow(); err != nil {
		return nil, err
	}
	// Listing takes no GPU memory beyond what it needs: a training may hold the rest.
	sess, err := tf.NewSession(tf.NewGraph(), optionsOf(&cfgpb.ConfigProto{GpuOptions: &cfgpb.GPUOptions{AllowGrowth: true}}))
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	ds, err := sess.ListDevices()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range ds {
		if d.Type != "CPU" {
			_, name, _ := strings.Cut(d.Name, "/device:")
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// nvidiaModels returns the models of the NVIDIA GPUs the driver reports, sorted.
func nvidiaModels() []string {
	infos, _ := filepath.Glob("/proc/driver/nvidia/gpus/*/information")
	var out []string
	for _, p := range infos {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if m, ok := strings.CutPrefix(l, "Model:"); ok {
				out = append(out, strings.TrimSpace(m))
			}
		}
	}
	slices.Sort(out)
	return out
}
