package graphs

import (
	tf "github.com/wamuir/graft/tensorflow"
	cfgpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"
)

// sessionOptions returns session options with the given intra-op thread count (0 keeps
// TensorFlow's default, one per core) and, with xla, XLA auto-clustering (measured slower on
// CPU for these networks; see BENCHMARKS.md). It first makes the process's sessions keep
// their own thread pools (PerSessionThreadPools), so that the count is honoured whatever
// session came first.
func sessionOptions(threads int, xla bool) *tf.SessionOptions {
	PerSessionThreadPools() // an error leaves TensorFlow's shared pool: slower, not wrong
	c := &cfgpb.ConfigProto{IntraOpParallelismThreads: int32(threads)}
	if xla {
		c.GraphOptions = &cfgpb.GraphOptions{OptimizerOptions: &cfgpb.OptimizerOptions{
			GlobalJitLevel: cfgpb.OptimizerOptions_ON_1, CpuGlobalJit: true}}
	}
	b, err := proto.Marshal(c)
	if err != nil {
		return nil
	}
	return &tf.SessionOptions{Config: b}
}
