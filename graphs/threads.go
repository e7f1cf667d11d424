package graphs

import (
	"fmt"
	"os"
)

// ThreadPoolsVar is the environment variable that makes TensorFlow give every session its own
// intra-op thread pool, sized by that session's options. Without it, all sessions of a
// process share one pool, sized by whichever session was created first.
const ThreadPoolsVar = "TF_OVERRIDE_GLOBAL_THREADPOOL"

// PerSessionThreadPools sets ThreadPoolsVar unless the user has set it, so that each session
// runs with the threads it asks for. TensorFlow reads the variable once, when it creates its
// first session, so this must run before any session is created. Without it, the split
// stage's JPEG decoder (one thread per call, its callers run one per core) would fix every
// later session of the process, training included, at a single thread, and a train stage's
// threads setting would be ignored whenever another session came first.
func PerSessionThreadPools() error {
	if _, set := os.LookupEnv(ThreadPoolsVar); set {
		return nil
	}
	if err := os.Setenv(ThreadPoolsVar, "1"); err != nil {
		return fmt.Errorf("per-session thread pools: %w", err)
	}
	return nil
}

// ThreadPoolsSetting returns how the sessions of a pipeline process get their threads, for
// cache keys (the thread count changes the order of floating-point sums): "per-session" when
// ThreadPoolsVar is unset (PerSessionThreadPools sets it) or true, "shared" otherwise, as
// TensorFlow reads it.
func ThreadPoolsSetting() string {
	if on, set, _ := envBool(ThreadPoolsVar); !set || on {
		return "per-session"
	}
	return "shared"
}
