#!/usr/bin/env python3
"""opprof.py: where a training step's time goes, per TensorFlow op type, for both sides of
tools/bench/run.sh, measured the same way.

  bin/gotrain --arch vgg19 --steps 1 --graphdef /tmp/vgg19.pb
  opprof.py --arch vgg19 --graphdef /tmp/vgg19.pb    # the Go trainer's graph, run by a session
  opprof.py --arch vgg19 --keras                     # the Keras twin, run by model.fit

Both run under TensorFlow's profiler (tf.profiler.experimental), which records every op
kernel the runtime executes; the script sums the kernels' durations by op type and prints
milliseconds per step, largest first. Kernels run on two threads at once, so the sum can
exceed the wall time of a step.
"""
import argparse
import collections
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="vgg19", choices=("cnn", "vgg19", "vit"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="profiled steps")
    p.add_argument("--warmup", type=int, default=5)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--graphdef", help="binary GraphDef written by gotrain --graphdef")
    g.add_argument("--keras", action="store_true", help="profile keras_train.py's model instead")
    p.add_argument("--top", type=int, default=25, help="op types to print")
    return p.parse_args()


def op_times(logdir):
    """Returns {op type: total µs}, {op type: kernels} and the number of kernel events, from
    the trace's xplane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not files:
        sys.exit(f"opprof: no xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    with open(files[0], "rb") as f:
        space.ParseFromString(f.read())
    totals, counts, events = collections.Counter(), collections.Counter(), 0
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        meta = plane.event_metadata
        for line in plane.lines:
            for ev in line.events:
                name = meta[ev.metadata_id].name
                # TensorFlow op kernels are recorded as "node_name:OpType".
                if ":" not in name or name.startswith(("::", "$")):
                    continue
                kind = name.rsplit(":", 1)[1]
                if not kind or not kind.lstrip("_")[:1].isupper() or " " in kind:
                    continue
                totals[kind] += ev.duration_ps / 1e6
                counts[kind] += 1
                events += 1
    return totals, counts, events


def profile(run_step, steps, warmup):
    import tensorflow as tf

    for _ in range(warmup):
        run_step()
    logdir = tempfile.mkdtemp(prefix="opprof-")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(steps):
        run_step()
    wall = time.perf_counter() - start
    tf.profiler.experimental.stop()
    return op_times(logdir), wall


def graph_stepper(a):
    import numpy as np
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    gd = tf.compat.v1.GraphDef()
    with open(a.graphdef, "rb") as f:
        gd.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    sess = tf.compat.v1.Session(graph=graph)
    rng = np.random.default_rng(1)
    feeds, targets = {}, []
    for o in graph.get_operations():
        if o.type == "AssignVariableOp" and o.name.startswith("init/"):
            ph = o.inputs[1]
            shape = [d if d is not None else 1 for d in ph.shape.as_list()]
            feeds[ph] = (rng.standard_normal(shape) * 0.05).astype(np.float32)
            targets.append(o)
    sess.run(targets, feed_dict=feeds)
    t = graph.get_tensor_by_name
    images = rng.integers(0, 256, size=(8, a.batch, a.size, a.size, 3)).astype(np.float32)
    labels = rng.integers(0, a.classes, size=(8, a.batch)).astype(np.int32)
    # Node names as graphs.NewTrainer's scopes make them.
    loss, pred = t("loss/mean/Mean:0"), t("loss/arg_max/ArgMax:0")
    train = graph.get_operation_by_name("train_step/NoOp")
    step = [0]

    def run():
        i = step[0] % 8
        step[0] += 1
        sess.run([loss, pred, train], feed_dict={
            t("input/images/Placeholder:0"): images[i], t("input/labels/Placeholder:0"): labels[i],
            t("input/seed/Placeholder:0"): np.array([1, step[0]], np.int64),
            t("optimizer/learning_rate/Placeholder:0"): 1e-3,
            t("optimizer/beta1_power/Placeholder:0"): 0.9 ** step[0], t("optimizer/beta2_power/Placeholder:0"): 0.999 ** step[0],
        })

    return run


def keras_stepper(a):
    import numpy as np
    import tensorflow as tf
    import keras
    from keras import ops
    import keras_train as kt

    keras.utils.set_random_seed(1)
    kt.define_layers(keras, ops)
    model = kt.build(keras, ops, a.arch, a.size, a.classes)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(8, a.batch, a.size, a.size, 3)).astype(np.float32)
    labels = np.eye(a.classes, dtype=np.float32)[rng.integers(0, a.classes, size=(8, a.batch))]
    data = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().prefetch(tf.data.AUTOTUNE)
    it = iter(data)

    def run():
        x, y = next(it)
        model.train_on_batch(x, y)

    return run


def main():
    a = parse_args()
    run = keras_stepper(a) if a.keras else graph_stepper(a)
    (totals, counts, events), wall = profile(run, a.steps, a.warmup)
    total = sum(totals.values())
    side = "keras" if a.keras else a.graphdef
    print(f"# {side}: {a.arch}, {a.steps} steps, {wall / a.steps * 1e3:.1f} ms/step wall, "
          f"{total / a.steps / 1e3:.1f} ms/step in {events // a.steps} kernels")
    for kind, us in totals.most_common(a.top):
        print(f"{us / a.steps / 1e3:9.2f} ms  {100 * us / total:5.1f} %  {counts[kind] / a.steps:6.1f}×  {kind}")


if __name__ == "__main__":
    main()
