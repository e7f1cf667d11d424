#!/usr/bin/env python3
"""keras_train.py measures Keras training throughput for the network gotrain trains.

It is the Keras half of tools/bench/run.sh: the same flags as tools/bench/gotrain, the same
network as gotrain's benchSpec() (graphs/arch_*.go) built with Keras 3 layers, Adam with the
same settings, softmax cross-entropy on one-hot labels, and a pool of 8 distinct random batches
held in memory. It trains with model.fit and prints one JSON line on stdout.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # keep stdout (and stderr) to the JSON line

# Must match benchSpec() in tools/bench/gotrain/main.go and the defaults in graphs/.
CNN = dict(channels=(32, 64, 128), dropout=0.2, pool=4, dense=512, dense_dropout=0.3)
VGG19 = dict(width=0.25, classifier=512, pool=1, dropout=0.5)
VGG19_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))  # (convs, base filters)
VIT = dict(patch=8, dim=128, depth=4, heads=4, mlp_ratio=2, pool="cls", dropout=0.1)
MEAN, STD = 127.5, 64.0  # graphs.Input in gotrain
BN_MOMENTUM, BN_EPSILON, LN_EPSILON = 0.9, 1e-5, 1e-6  # PyTorch momentum 0.1 == Keras 0.9
POOL = 8  # distinct batches


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="cnn", choices=("cnn", "vgg19", "vit"))
    p.add_argument("--size", type=int, default=64, help="image height and width")
    p.add_argument("--classes", type=int, default=10, help="number of classes")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: default)")
    p.add_argument("--jit", default="auto", choices=("auto", "on", "off"),
                   help="model.compile jit_compile: auto (the Keras default), on or off")
    p.add_argument("--summary", action="store_true", help="print model.summary() to stderr")
    a = p.parse_args()
    if a.steps <= 0 or a.warmup < 0 or a.batch <= 0:
        p.error("steps and batch must be positive, warmup not negative")
    return a


def build(keras, ops, arch, size, classes):
    """Returns the functional model; layer for layer what graphs/arch_<arch>.go builds."""
    layers = keras.layers

    def adaptive_avg_pool(x, out):
        # graphs.AdaptiveAvgPool: identity when already out×out, a plain VALID average pool
        # when the size divides evenly (always the case at the bench sizes).
        h, w = x.shape[1], x.shape[2]
        if h == out and w == out:
            return x
        if h % out or w % out:
            sys.exit(f"keras_train: adaptive pool {h}x{w} -> {out}x{out} is not a plain pool; "
                     "choose a size that divides evenly")
        return layers.AveragePooling2D((h // out, w // out), strides=(h // out, w // out), padding="valid")(x)

    inputs = keras.Input((size, size, 3), dtype="float32", name="images")
    # Classifier.Logits: (x - mean) / std inside the graph.
    x = layers.Rescaling(1 / STD, offset=-MEAN / STD, name="normalize")(inputs)

    if arch == "cnn":
        c = CNN
        for i, ch in enumerate(c["channels"], 1):
            x = layers.Conv2D(ch, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"block{i}_bn")(x)
            x = layers.ReLU(name=f"block{i}_relu")(x)
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{i}_pool")(x)
            x = layers.Dropout(c["dropout"], name=f"block{i}_dropout")(x)
        x = layers.Flatten()(adaptive_avg_pool(x, c["pool"]))
        x = layers.Dense(c["dense"], activation="relu", name="fc")(x)
        x = layers.Dropout(c["dense_dropout"])(x)
        logits = layers.Dense(classes, name="head")(x)

    elif arch == "vgg19":
        c = VGG19  # batch_norm false: convolutions keep their bias
        for bi, (convs, base) in enumerate(VGG19_BLOCKS, 1):
            filters = int(max(1, round(base * c["width"])))
            for j in range(1, convs + 1):
                x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{bi}_conv{j}")(x)
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{bi}_pool")(x)
        x = layers.Flatten()(adaptive_avg_pool(x, c["pool"]))
        x = layers.Dense(c["classifier"], activation="relu", name="fc1")(x)
        x = layers.Dropout(c["dropout"])(x)
        x = layers.Dense(c["classifier"], activation="relu", name="fc2")(x)
        x = layers.Dropout(c["dropout"])(x)
        logits = layers.Dense(classes, name="head")(x)

    else:
        c = VIT
        p, d, rate = c["patch"], c["dim"], c["dropout"]
        if size % p:
            sys.exit(f"keras_train: image {size}x{size} is not divisible into {p}x{p} patches")
        t = (size // p) ** 2
        x = layers.Conv2D(d, p, strides=p, padding="valid", name="patch_embed")(x)
        x = layers.Reshape((t, d))(x)
        if c["pool"] == "cls":
            x = ClassToken(name="cls_token")(x)
            t += 1
        x = PositionEmbedding(name="pos_embed")(x)
        x = layers.Dropout(rate, name="embed_dropout")(x)
        hidden = int(round(c["mlp_ratio"] * d))
        for i in range(1, c["depth"] + 1):
            # Pre-norm block: x + Drop(MHSA(LN(x))), x + Drop(MLP(LN(x))).
            h = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"block{i}_ln1")(x)
            h = SelfAttention(c["heads"], rate, name=f"block{i}_attn")(h)
            x = layers.Add()([x, layers.Dropout(rate)(h)])
            h = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"block{i}_ln2")(x)
            h = layers.Dense(hidden, name=f"block{i}_mlp1")(h)
            h = layers.Activation(lambda v: keras.activations.gelu(v, approximate=False), name=f"block{i}_gelu")(h)
            h = layers.Dropout(rate)(h)
            h = layers.Dense(d, name=f"block{i}_mlp2")(h)
            x = layers.Add()([x, layers.Dropout(rate)(h)])
        x = layers.LayerNormalization(epsilon=LN_EPSILON, name="ln")(x)
        if c["pool"] == "cls":
            x = layers.Lambda(lambda v: v[:, 0], name="cls")(x)
        else:
            x = layers.GlobalAveragePooling1D()(x)
        logits = layers.Dense(classes, name="head")(x)

    return keras.Model(inputs, logits, name=arch)


def define_layers(keras, ops):
    """Defines the ViT layers Keras does not ship in the exact form graphs/ uses."""
    global ClassToken, PositionEmbedding, SelfAttention
    trunc02 = lambda: keras.initializers.TruncatedNormal(stddev=0.02)  # noqa: E731

    class ClassToken(keras.layers.Layer):
        """Prepends a learned [1, 1, D] token (truncated normal 0.02) to [N, T, D]."""

        def build(self, shape):
            self.token = self.add_weight(shape=(1, 1, shape[-1]), initializer=trunc02(), name="token")

        def call(self, x):
            n = ops.shape(x)[0]
            return ops.concatenate([ops.tile(self.token, (n, 1, 1)), x], axis=1)

        def compute_output_shape(self, shape):
            return (shape[0], None if shape[1] is None else shape[1] + 1, shape[2])

    class PositionEmbedding(keras.layers.Layer):
        """Adds a learned [1, T, D] embedding (truncated normal 0.02)."""

        def build(self, shape):
            self.pos = self.add_weight(shape=(1, shape[1], shape[2]), initializer=trunc02(), name="pos")

        def call(self, x):
            return x + self.pos

    class SelfAttention(keras.layers.Layer):
        """graphs.MultiHeadSelfAttention: fused qkv Dense(3D), scaled dot product, dropout on
        the attention probabilities, output Dense(D)."""

        def __init__(self, heads, dropout, **kw):
            super().__init__(**kw)
            self.heads, self.rate = heads, dropout

        def build(self, shape):
            t, d = shape[1], shape[2]
            self.t, self.d, self.hd = t, d, d // self.heads
            self.qkv = keras.layers.Dense(3 * d, name="qkv")
            self.qkv.build(shape)
            self.proj = keras.layers.Dense(d, name="proj")
            self.proj.build((shape[0], t, d))
            self.drop = keras.layers.Dropout(self.rate)

        def call(self, x, training=None):
            t, d, h, hd = self.t, self.d, self.heads, self.hd
            qkv = ops.reshape(self.qkv(x), (-1, t, 3, h, hd))
            qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # [3, N, H, T, hd]
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(hd))
            attn = self.drop(ops.softmax(scores, axis=-1), training=training)
            o = ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3))  # [N, T, H, hd]
            return self.proj(ops.reshape(o, (-1, t, d)))

        def compute_output_shape(self, shape):
            return shape


def main():
    a = parse_args()
    import numpy as np
    import tensorflow as tf

    if a.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    import keras
    from keras import ops
    from tensorflow.python.util import _pywrap_util_port

    keras.utils.set_random_seed(1)
    define_layers(keras, ops)
    model = build(keras, ops, a.arch, a.size, a.classes)
    if a.summary:
        model.summary(print_fn=lambda s, **_: print(s, file=sys.stderr))
    params = int(sum(np.prod(w.shape) for w in model.trainable_weights))

    jit = {"auto": "auto", "on": True, "off": False}[a.jit]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )

    # A pool of distinct batches held in memory, each dataset element one whole batch.
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(POOL, a.batch, a.size, a.size, 3)).astype(np.float32)
    labels = np.eye(a.classes, dtype=np.float32)[rng.integers(0, a.classes, size=(POOL, a.batch))]
    data = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().prefetch(tf.data.AUTOTUNE)

    class Timer(keras.callbacks.Callback):
        """Times the steps after the warmup: from the end of the warmup-th batch to the end of
        the last one."""

        def __init__(self):
            super().__init__()
            self.start = self.end = None

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0 and a.warmup == 0:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch == a.warmup - 1:
                self.start = time.perf_counter()
            if batch == a.warmup + a.steps - 1:
                self.end = time.perf_counter()

    timer = Timer()
    model.fit(data, epochs=1, steps_per_epoch=a.warmup + a.steps, callbacks=[timer], verbose=0)
    if timer.start is None or timer.end is None:
        sys.exit("keras_train: timing callback did not fire")
    secs = timer.end - timer.start
    out = {
        "impl": "keras", "arch": a.arch, "params": params, "batch": a.batch, "size": a.size,
        "images_per_s": a.steps * a.batch / secs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "jit": a.jit if a.jit != "auto" else f"auto({'on' if model.jit_compile else 'off'})",
        # Whether TensorFlow runs its oneDNN kernels, and the variable that decided it (None:
        # unset, TensorFlow's default for this CPU).
        "onednn": bool(_pywrap_util_port.IsMklEnabled()),
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }
    print(json.dumps(out, sort_keys=True, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
