#!/usr/bin/env bash
# libtensorflow-shim.sh LIBDIR REAL: builds LIBDIR/libtensorflow.so, a small library that
# exports every TF_/TFE_ function of LIBDIR/REAL (the real libtensorflow) and loads REAL only
# when one of them is first called. install-libtensorflow.sh runs it on x86-64.
#
# Why: libtensorflow costs 0.2–0.3 s in every process that links it (relocations and static
# initialisers), before main. Commands that never run TensorFlow (validate, plan, graph, runs,
# gc) then start in milliseconds, and a training process can set TF_ENABLE_ONEDNN_OPTS before
# TensorFlow reads it.
#
# How: each exported function is an 8-byte indirect jump through a table. The table starts out
# pointing at per-function stubs that save the argument registers, call pipeline_tf_resolve
# (dlopen REAL with the shim's RUNPATH $ORIGIN, dlsym every function into the table, once),
# restore the registers and jump to the real function, which returns straight to the caller.
# Arguments, return values and the stack are never touched, so no prototypes are needed.
# The shim also exports:
#   int pipeline_tf_load(char *err, size_t n)  load now; 0, or 1 with a message in err
#   int pipeline_tf_loaded(void)               whether REAL is loaded
#   const char *pipeline_tf_version(void)      TF_Version() of REAL, recorded here at build
#                                              time (keys and plans need it without loading)
# Loading checks that REAL still reports that version. PIPELINE_LIBTENSORFLOW=path overrides
# the library loaded (it must report the same version).
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 LIBDIR REAL" >&2; exit 2; }
libdir=$1
real=$2
die() { echo "libtensorflow-shim: $*" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || die "the shim's trampolines are x86-64 code; $(uname -m) links libtensorflow directly"
[ -f "$libdir/$real" ] || die "$libdir/$real does not exist"
cc=${CC:-cc}
command -v "$cc" >/dev/null || die "a C compiler ($cc) is needed"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The version the real library reports, from a probe that loads it the way the shim will.
cat >"$work/probe.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL | RTLD_DEEPBIND);
  if (h == NULL) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  const char *(*version)(void) = (const char *(*)(void))dlsym(h, "TF_Version");
  if (version == NULL) { fprintf(stderr, "no TF_Version\n"); return 1; }
  puts(version());
  return 0;
}
EOF
"$cc" -o "$work/probe" "$work/probe.c" -ldl || die "cannot build the version probe"
tf_version=$(TF_CPP_MIN_LOG_LEVEL=3 "$work/probe" "$(cd "$libdir" && pwd)/$real") || die "$real: TF_Version() failed"
case $tf_version in *[!0-9A-Za-z.+-]*|"") die "$real reports an unexpected version '$tf_version'" ;; esac

# Functions: text (T), weak (W) and indirect (i) symbols, as install-libtensorflow.sh's check
# counts any defined symbol.
nm -D --defined-only "$libdir/$real" | awk '$2 ~ /^[TWi]$/ && $3 ~ /^TFE?_/ { sub(/@.*/, "", $3); print $3 }' |
  sort -u >"$work/symbols"
n=$(wc -l <"$work/symbols")
[ "$n" -gt 0 ] || die "$real exports no TF_ functions"

# Trampolines and the table (x86-64, System V ABI).
awk -v n="$n" '
BEGIN {
  print "\t.text"
}
{
  i = NR - 1
  printf "\t.globl %s\n\t.type %s, @function\n\t.p2align 3\n%s:\n\tjmp *pipeline_tf_table+%d(%%rip)\n\t.size %s, .-%s\n", $1, $1, $1, 8 * i, $1, $1
  printf ".Llazy%d:\n\tmovl $%d, %%r11d\n\tjmp .Lresolve\n", i, i
}
END {
  # Entry: %rsp = 8 mod 16. Seven pushes and 128 bytes keep the call below 16-byte aligned.
  print ".Lresolve:"
  print "\tpushq %rax\n\tpushq %rdi\n\tpushq %rsi\n\tpushq %rdx\n\tpushq %rcx\n\tpushq %r8\n\tpushq %r9"
  print "\tsubq $128, %rsp"
  for (r = 0; r < 8; r++) printf "\tmovdqu %%xmm%d, %d(%%rsp)\n", r, 16 * r
  print "\tmovl %r11d, %edi\n\tcall pipeline_tf_resolve\n\tmovq %rax, %r11"
  for (r = 0; r < 8; r++) printf "\tmovdqu %d(%%rsp), %%xmm%d\n", 16 * r, r
  print "\taddq $128, %rsp"
  print "\tpopq %r9\n\tpopq %r8\n\tpopq %rcx\n\tpopq %rdx\n\tpopq %rsi\n\tpopq %rdi\n\tpopq %rax"
  print "\tjmp *%r11"
  print "\t.data\n\t.p2align 3\n\t.globl pipeline_tf_table\n\t.hidden pipeline_tf_table\npipeline_tf_table:"
  for (i = 0; i < n; i++) printf "\t.quad .Llazy%d\n", i
  print "\t.section .note.GNU-stack,\"\",@progbits"
}' "$work/symbols" >"$work/trampolines.S"

{
  cat <<EOF
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N $n
__attribute__((visibility("hidden"))) extern void *pipeline_tf_table[N];
static const char version[] = "$tf_version";
static const char library[] = "$real";
static const char *const names[N] = {
EOF
  sed 's/.*/  "&",/' "$work/symbols"
  cat <<'EOF'
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char failure[1024];
static __thread int loading;

static void load(void) {
  const char *path = getenv("PIPELINE_LIBTENSORFLOW");
  if (path == NULL || *path == 0) path = library;
  /* RTLD_DEEPBIND: libtensorflow's own calls to its TF_ functions (some run in its static
     initialisers, inside this dlopen) must bind to itself, not to these trampolines. */
  loading = 1;
  void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL | RTLD_DEEPBIND);
  loading = 0;
  if (h == NULL) {
    snprintf(failure, sizeof failure, "cannot load %s: %s", path, dlerror());
    return;
  }
  void *table[N];
  for (int i = 0; i < N; i++) {
    table[i] = dlsym(h, names[i]);
    if (table[i] == NULL) {
      snprintf(failure, sizeof failure, "%s does not export %s; run tools/install-libtensorflow.sh again", path, names[i]);
      return;
    }
  }
  const char *got = ((const char *(*)(void))dlsym(h, "TF_Version"))();
  if (strcmp(got, version) != 0) {
    snprintf(failure, sizeof failure,
             "%s is TensorFlow %s, but this build of pipeline was set up for %s; run tools/install-libtensorflow.sh and rebuild",
             path, got, version);
    return;
  }
  for (int i = 0; i < N; i++) __atomic_store_n(&pipeline_tf_table[i], table[i], __ATOMIC_RELEASE);
  __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
}

int pipeline_tf_load(char *err, size_t n) {
  pthread_once(&once, load);
  if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return 0;
  if (err != NULL && n > 0) snprintf(err, n, "%s", failure);
  return 1;
}

int pipeline_tf_loaded(void) { return __atomic_load_n(&loaded, __ATOMIC_ACQUIRE); }

const char *pipeline_tf_version(void) { return version; }

/* Called by a trampoline on the first call of function i. */
__attribute__((visibility("hidden"))) void *pipeline_tf_resolve(unsigned i) {
  if (loading) {
    fprintf(stderr, "pipeline: libtensorflow called %s through the loading shim while loading\n", names[i]);
    abort();
  }
  if (pipeline_tf_load(NULL, 0) != 0) {
    fprintf(stderr, "pipeline: libtensorflow: %s (calling %s)\n", failure, names[i]);
    exit(70);
  }
  return pipeline_tf_table[i];
}
EOF
} >"$work/shim.c"

"$cc" -shared -fPIC -O2 -o "$work/libtensorflow.so" "$work/trampolines.S" "$work/shim.c" \
  -Wl,-soname,libtensorflow.so -Wl,-rpath,'$ORIGIN' -Wl,--no-undefined -ldl -lpthread ||
  die "cannot build the shim"
mv -f "$work/libtensorflow.so" "$libdir/libtensorflow.so"
echo "libtensorflow-shim: $libdir/libtensorflow.so: $n functions, TensorFlow $tf_version, loads $real on first use" >&2
