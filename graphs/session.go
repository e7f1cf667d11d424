package graphs

import (
	tf "github.com/wamuir/graft/tensorflow"
	cfgpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"
)

// sessionOptions returns session options with the given intra-op thread count (0 keeps
// TensorFlow's default, one per core) and, with xla, XLA auto-clustering (measured slower on
// CPU for these networks; see BENCHMARKS.md).
func sessionOptions(threads int, xla bool) *tf.SessionOptions {
	c := &cfgpb.ConfigProto{IntraOpParallelismThreads: int32(threads)}
	if xla {
		c.GraphOptions = &cfgpb.GraphOptions{OptimizerOptions: &cfgpb.OptimizerOptions{
			GlobalJitLevel: cfgpb.OptimizerOptions_ON_1, CpuGlobalJit: true}}
	}
	return optionsOf(c)
}

// CallerThreadOptions returns options for a session whose every call runs on its caller's
// thread with one intra-op thread: for small per-image graphs (decoding, encoding) called
// from one goroutine per core, where a negative inter-op count keeps concurrent calls from
// queueing for a shared pool.
func CallerThreadOptions() *tf.SessionOptions {
	return optionsOf(&cfgpb.ConfigProto{IntraOpParallelismThreads: 1, InterOpParallelismThreads: -1})
}

// optionsOf marshals c into session options. Every session of the process is created with
// options from here, so this is where the process's sessions are made to keep their own
// thread pools (PerSessionThreadPools) before the first one exists: a one-thread session
// created first must not fix every later session, training's included, at one thread.
func optionsOf(c *cfgpb.ConfigProto) *tf.SessionOptions {
	PerSessionThreadPools() // an error leaves TensorFlow's shared pool: slower, not wrong
	b, err := proto.Marshal(c)
	if err != nil {
		return nil
	}
	return &tf.SessionOptions{Config: b}
}
