#!/usr/bin/env python3
"""keras_twin.py trains a Keras twin of each network a `pipeline run` trained, on the same data.

It reads a pipeline run folder (models/<run>/): the augmented training set
(augment.balanced/output), the validation set (split.main/val) and the test set
(split.main/test), each a folder with manifest.json whose image paths are relative to that
folder, and the hyperparameters the pipeline recorded in <run>/<arch>/metrics.json (epochs,
batch size, optimizer, learning rate, weight decay, schedule, warm-up, label smoothing, select
metric, architecture options). It then trains, per architecture, the network of
graphs/arch_<arch>.go built with Keras 3 layers, the way stages/train_loop.go trains it:

- input float32 0-255, normalised inside the model by (x - mean) * (1/std) per channel, mean and
  std over the ORIGINAL training images (manifest entries without "copy"), std floored at 1;
- AdamW (beta 0.9/0.999, epsilon 1e-7, decoupled decay v <- v - lr*wd*v before the Adam step,
  applied to every trainable variable as keras.optimizers.AdamW does by default);
- the learning rate of stages/train_schedule.go per step (linear warm-up, then half-cosine to 0
  over the remaining steps; or constant);
- softmax cross-entropy on one-hot labels, mean over the batch; the training set reshuffled
  every epoch; the last partial batch kept;
- after every epoch the validation set is scored (macro-F1, loss, top-1/3/5) and the epoch with
  the best select metric (ties: lower validation loss) is kept;
- the kept weights are scored on the test set with the definitions of stages/metrics.go:
  macro-F1 over classes that have examples or predictions (zero division 0), top-k with ties
  broken towards the lower class index.

One JSON line per architecture goes to stdout; progress goes to stderr.

The ViT layers come from tools/bench/keras_train.py; the model builder here extends that file's
with VGG19 batch norm, grey input and the pipeline's normalisation.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BN_MOMENTUM, BN_EPSILON, LN_EPSILON = 0.9, 1e-5, 1e-6  # PyTorch momentum 0.1 == Keras 0.9
VGG19_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))  # (convs, base filters)
# graphs.DefaultCNN / DefaultVGG19 / DefaultViT: the options the pipeline's metrics.json
# records are complete, these only fill anything missing.
DEFAULTS = {
    "cnn": dict(channels=[32, 64, 128], dropout=0.2, pool=4, dense=512, dense_dropout=0.3),
    "vgg19": dict(width=1.0, classifier=4096, pool=7, batch_norm=False, dropout=0.5),
    "vit": dict(patch=16, dim=768, depth=12, heads=12, mlp_ratio=4, pool="cls", dropout=0.1),
}


def log(*a):
    print("keras_twin:", *a, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="pipeline run folder, e.g. models/20261129_060203")
    p.add_argument("--arch", default="", help="comma-separated architectures (default: every <run>/<arch>/metrics.json)")
    p.add_argument("--train", default="augment.balanced/output", help="training set folder, relative to --run")
    p.add_argument("--val", default="split.main/val", help="validation set folder, relative to --run")
    p.add_argument("--test", default="split.main/test", help="test set folder, relative to --run")
    p.add_argument("--seed", type=int, default=42, help="keras.utils.set_random_seed")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: default, one per core)")
    p.add_argument("--epochs", type=int, default=0, help="override the pipeline's epochs (0: the same)")
    return p.parse_args()


# ---------------------------------------------------------------- data


def load_set(tf, np, folder):
    """Returns (manifest, images uint8 [N, H, W, C], labels int32 [N], is_original bool [N])."""
    with open(os.path.join(folder, "manifest.json")) as f:
        m = json.load(f)
    if m.get("format") != 1:
        sys.exit(f"keras_twin: {folder}/manifest.json: format {m.get('format')}, this script reads 1")
    size, ch = m["image_size"], m["channels"]
    n = len(m["images"])
    x = np.empty((n, size, size, ch), np.uint8)
    y = np.empty(n, np.int32)
    orig = np.empty(n, bool)
    for i, e in enumerate(m["images"]):
        path = os.path.join(folder, e["path"])
        with open(path, "rb") as f:
            raw = f.read()
        # The stored images are PNG (lossless) or JPEG; decode_image handles both. Pillow is not
        # in the project's venv, TensorFlow's decoders are.
        img = tf.io.decode_image(raw, channels=ch, expand_animations=False).numpy()
        if img.shape != (size, size, ch):
            sys.exit(f"keras_twin: {path} is {img.shape}, the manifest says {size}x{size}x{ch}")
        x[i] = img
        y[i] = e["label"]
        orig[i] = "copy" not in e or e["copy"] is None
    return m, x, y, orig


def channel_stats(np, x):
    """stages/train_data.go channelStats: mean and population std per channel (0-255 units),
    std floored at 1, accumulated in float64."""
    c = x.shape[-1]
    v = x.reshape(-1, c).astype(np.float64)
    mean = v.mean(axis=0)
    var = np.maximum((v * v).mean(axis=0) - mean * mean, 0)
    std = np.maximum(np.sqrt(var), 1)
    return mean.astype(np.float32), std.astype(np.float32)


# ---------------------------------------------------------------- metrics (stages/metrics.go)


def confusion(np, truth, pred, k):
    c = np.zeros((k, k), np.int64)
    np.add.at(c, (truth, pred), 1)
    return c


def macro_f1(np, c):
    tp = np.diag(c).astype(np.float64)
    predicted = c.sum(axis=0)
    support = c.sum(axis=1)
    prec = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    rec = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0.0)
    used = (support > 0) | (predicted > 0)
    return float(f1[used].mean()) if used.any() else 0.0


def weighted_f1(np, c):
    tp = np.diag(c).astype(np.float64)
    predicted, support = c.sum(axis=0), c.sum(axis=1)
    prec = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    rec = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0.0)
    return float((f1 * support).sum() / max(support.sum(), 1))


def score(np, logits, labels, k):
    """Loss, macro/weighted F1 and top-1/3/5 of logits against labels (metrics.go, evaluateSet)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    probs = np.exp(logp)
    n = len(labels)
    loss = float(-logp[np.arange(n), labels].mean())
    pred = probs.argmax(axis=1)  # first index on ties, as argmax in metrics.go
    p_true = probs[np.arange(n), labels][:, None]
    idx = np.arange(k)[None, :]
    better = ((probs > p_true) | ((probs == p_true) & (idx < labels[:, None]))).sum(axis=1)
    c = confusion(np, labels, pred, k)
    return {
        "loss": loss, "f1": macro_f1(np, c), "f1_weighted": weighted_f1(np, c),
        "top1": float((better < 1).mean()), "top3": float((better < 3).mean()), "top5": float((better < 5).mean()),
    }


# ---------------------------------------------------------------- network (graphs/arch_*.go)


def define_layers(keras, ops, np):
    """Normalize, plus the ViT layers of tools/bench/keras_train.py (imported, not copied)."""
    global Normalize, ClassToken, PositionEmbedding, SelfAttention
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import keras_train

    keras_train.define_layers(keras, ops)
    ClassToken, PositionEmbedding, SelfAttention = (
        keras_train.ClassToken, keras_train.PositionEmbedding, keras_train.SelfAttention)

    class Normalize(keras.layers.Layer):
        """graphs.Classifier: (x - mean) * (1/std) per channel, constants in the graph."""

        def __init__(self, mean, std, **kw):
            super().__init__(**kw)
            self.mean = np.asarray(mean, np.float32)
            self.inv = (1.0 / np.asarray(std, np.float32)).astype(np.float32)

        def call(self, x):
            return (x - ops.convert_to_tensor(self.mean)) * ops.convert_to_tensor(self.inv)


def build(keras, arch, c, size, channels, classes, mean, std):
    """The functional model; layer for layer what graphs/arch_<arch>.go builds."""
    layers = keras.layers

    def adaptive_avg_pool(x, out):
        h, w = x.shape[1], x.shape[2]
        if h == out and w == out:
            return x
        if h % out or w % out:
            sys.exit(f"keras_twin: adaptive pool {h}x{w} -> {out}x{out} is not a plain pool (not implemented)")
        return layers.AveragePooling2D((h // out, w // out), strides=(h // out, w // out), padding="valid")(x)

    def bn(name):
        return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)

    inputs = keras.Input((size, size, channels), dtype="float32", name="images")
    x = Normalize(mean, std, name="normalize")(inputs)

    if arch == "cnn":
        for i, ch in enumerate(c["channels"], 1):
            x = layers.Conv2D(ch, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
            x = layers.ReLU(name=f"block{i}_relu")(bn(f"block{i}_bn")(x))
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{i}_pool")(x)
            x = layers.Dropout(c["dropout"], name=f"block{i}_dropout")(x)
        x = layers.Flatten()(adaptive_avg_pool(x, c["pool"]))
        x = layers.Dense(c["dense"], activation="relu", name="fc")(x)
        x = layers.Dropout(c["dense_dropout"])(x)
        logits = layers.Dense(classes, name="head")(x)

    elif arch == "vgg19":
        for bi, (convs, base) in enumerate(VGG19_BLOCKS, 1):
            filters = max(1, int(math.floor(base * c["width"] + 0.5)))  # Go math.Round, positive values
            for j in range(1, convs + 1):
                name = f"block{bi}_conv{j}"
                x = layers.Conv2D(filters, 3, padding="same", use_bias=not c["batch_norm"], name=name)(x)
                if c["batch_norm"]:
                    x = bn(f"{name}_bn")(x)
                x = layers.ReLU(name=f"{name}_relu")(x)
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{bi}_pool")(x)
        x = layers.Flatten()(adaptive_avg_pool(x, c["pool"]))
        x = layers.Dense(c["classifier"], activation="relu", name="fc1")(x)
        x = layers.Dropout(c["dropout"])(x)
        x = layers.Dense(c["classifier"], activation="relu", name="fc2")(x)
        x = layers.Dropout(c["dropout"])(x)
        logits = layers.Dense(classes, name="head")(x)

    elif arch == "vit":
        p, d, rate = c["patch"], c["dim"], c["dropout"]
        if size % p:
            sys.exit(f"keras_twin: image {size}x{size} is not divisible into {p}x{p} patches")
        t = (size // p) ** 2
        x = layers.Conv2D(d, p, strides=p, padding="valid", name="patch_embed")(x)
        x = layers.Reshape((t, d))(x)
        if c["pool"] == "cls":
            x = ClassToken(name="cls_token")(x)
        x = PositionEmbedding(name="pos_embed")(x)
        x = layers.Dropout(rate, name="embed_dropout")(x)
        hidden = int(math.floor(c["mlp_ratio"] * d + 0.5))
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
    else:
        sys.exit(f"keras_twin: unknown architecture {arch!r}")
    return keras.Model(inputs, logits, name=arch)


def make_schedule(keras, ops, kind, base, warmup_steps, total_steps):
    """stages/train_schedule.go rate(step): warm-up base*(step+1)/warmup, then half-cosine to 0
    over the steps after the warm-up (cosine) or base (constant). step is 0-based, as the
    optimizer's iteration count is when the first update runs."""

    class PipelineSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            s = ops.cast(step, "float32")
            lr = ops.convert_to_tensor(base, "float32")
            if kind == "cosine" and total_steps - warmup_steps > 0:
                t = ops.minimum(1.0, (s - warmup_steps) / float(total_steps - warmup_steps))
                lr = base * 0.5 * (1.0 + ops.cos(math.pi * t))
            if warmup_steps > 0:
                lr = ops.where(s < warmup_steps, base * (s + 1.0) / float(warmup_steps), lr)
            return lr

        def get_config(self):
            return {}

    if kind not in ("cosine", "constant"):
        sys.exit(f"keras_twin: schedule {kind!r} is not implemented (cosine and constant are)")
    return PipelineSchedule()


# ---------------------------------------------------------------- training


def train_one(keras, ops, tf, np, arch, hp, data, seed, epochs_override):
    (m_train, x_tr, y_tr, orig), (m_val, x_va, y_va, _), (m_te, x_te, y_te, _) = data
    classes = len(m_train["classes"])
    size, channels = m_train["image_size"], m_train["channels"]
    opts = dict(DEFAULTS[arch])
    opts.update((hp["architecture_options"] or {}).get(arch) or {})
    epochs = epochs_override or int(hp["epochs"])
    batch = int(hp["batch_size"])
    lr = float(hp["learning_rate"])
    if hp.get("optimizer", "adamw") not in ("adam", "adamw"):
        sys.exit(f"keras_twin: optimizer {hp.get('optimizer')!r} is not implemented")
    wd = float(hp.get("weight_decay", 0)) if hp.get("optimizer", "adamw") == "adamw" else 0.0
    smoothing = float(hp.get("label_smoothing", 0))
    select = hp.get("select_metric", "val_f1")

    keras.utils.set_random_seed(seed)
    mean, std = channel_stats(np, x_tr[orig])
    model = build(keras, arch, opts, size, channels, classes, mean, std)
    n = len(y_tr)
    steps_per_epoch = (n + batch - 1) // batch
    sched = make_schedule(keras, ops, hp.get("schedule", "cosine"), lr,
                          int(hp.get("warmup_epochs", 0)) * steps_per_epoch, epochs * steps_per_epoch)
    if wd > 0:
        opt = keras.optimizers.AdamW(learning_rate=sched, weight_decay=wd, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    else:
        opt = keras.optimizers.Adam(learning_rate=sched, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    model.compile(optimizer=opt, loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing))
    params = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    log(f"{arch}: {params} parameters, {n} training images ({int(orig.sum())} originals), {len(y_va)} val, "
        f"{len(y_te)} test, {epochs} epochs x {steps_per_epoch} steps of {batch}, lr {lr} {hp.get('schedule')}, "
        f"wd {wd}, mean {mean.tolist()} std {std.tolist()}, jit {model.jit_compile}")

    xf_tr = x_tr.astype(np.float32)
    yo_tr = np.eye(classes, dtype=np.float32)[y_tr]
    xf_va, xf_te = x_va.astype(np.float32), x_te.astype(np.float32)
    eval_batch = max(batch, 64)

    history, best = [], {"epoch": 0, "weights": None}
    train_secs = [0.0]

    def better(rec):
        v = rec[select]
        if math.isnan(v):
            return False
        if best["epoch"] == 0:
            return True
        b = history[best["epoch"] - 1]
        lower = select == "val_loss"
        if (lower and v < b[select]) or (not lower and v > b[select]):
            return True
        return v == b[select] and rec["val_loss"] < b["val_loss"]

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            secs = time.perf_counter() - self.t0  # training only: no validation_data is given to fit
            train_secs[0] += secs
            s = score(np, model.predict(xf_va, batch_size=eval_batch, verbose=0), y_va, classes)
            step = (epoch + 1) * steps_per_epoch - 1
            rec = {"epoch": epoch + 1, "train_loss": float(logs["loss"]), "val_loss": s["loss"], "val_f1": s["f1"],
                   "val_top1": s["top1"], "val_top3": s["top3"], "val_top5": s["top5"],
                   "learning_rate": float(ops.convert_to_numpy(sched(step))), "images_per_s": n / secs, "seconds": secs}
            history.append(rec)
            if better(rec):
                best["epoch"], best["weights"] = epoch + 1, [w.copy() for w in model.get_weights()]
            log(f"{arch} seed {seed} epoch {epoch + 1}/{epochs}: train loss {rec['train_loss']:.4f} | val loss "
                f"{rec['val_loss']:.4f} f1 {rec['val_f1']:.3f} top1 {rec['val_top1']:.3f} | lr {rec['learning_rate']:.2g} "
                f"| {rec['images_per_s']:.0f} img/s")

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    model.fit(xf_tr, yo_tr, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[EpochEnd()])
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds this process used per second of fit (2.0 = both cores of a 2-core machine): a
    # low value while the process is CPU-bound means something else had the cores.
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / wall
    selection = f"epoch {best['epoch']} had the best {select}"
    if best["epoch"] == 0:
        best["epoch"] = len(history)
        selection = f"{select} never finite; kept the last epoch"
    else:
        model.set_weights(best["weights"])
    t = score(np, model.predict(xf_te, batch_size=64, verbose=0), y_te, classes)
    b = history[best["epoch"] - 1]
    return {
        "impl": "keras", "arch": arch, "seed": seed, "params": params, "epochs": epochs, "batch_size": batch,
        "learning_rate": lr, "weight_decay": wd, "schedule": hp.get("schedule"), "options": opts,
        "best_epoch": best["epoch"], "selection": selection,
        "val_f1": b["val_f1"], "val_loss": b["val_loss"], "val_top1": b["val_top1"],
        "test_f1_macro": t["f1"], "test_f1_weighted": t["f1_weighted"], "test_top1": t["top1"], "test_top3": t["top3"],
        "test_top5": t["top5"], "test_loss": t["loss"],
        "train_images_per_s": n * len(history) / train_secs[0], "train_seconds": train_secs[0], "fit_seconds": wall, "fit_cpu_per_s": cpu,
        "loadavg_1m_after": os.getloadavg()[0],
        "train_images": n, "val_images": len(y_va), "test_images": len(y_te),
        "normalization_mean": mean.tolist(), "normalization_std": std.tolist(),
        "jit": bool(model.jit_compile),
        "val_f1_by_epoch": [round(r["val_f1"], 4) for r in history],
    }


def main():
    a = parse_args()
    import numpy as np
    import tensorflow as tf

    if a.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    import keras
    from keras import ops

    define_layers(keras, ops, np)
    run = a.run
    archs = [s for s in a.arch.split(",") if s] or sorted(
        d for d in os.listdir(run) if os.path.isfile(os.path.join(run, d, "metrics.json")))
    if not archs:
        sys.exit(f"keras_twin: no <arch>/metrics.json in {run}")
    t0 = time.perf_counter()
    data = [load_set(tf, np, os.path.join(run, s)) for s in (a.train, a.val, a.test)]
    names = [d[0]["classes"] for d in data]
    if names[0] != names[1] or names[0] != names[2]:
        sys.exit("keras_twin: train, val and test list different classes")
    log(f"loaded {sum(len(d[2]) for d in data)} images in {time.perf_counter() - t0:.1f}s")
    for arch in archs:
        with open(os.path.join(run, arch, "metrics.json")) as f:
            pm = json.load(f)
        hp = dict(pm["hyperparameters"])
        hp["select_metric"] = pm.get("select_metric", "val_f1")
        opts = hp.get("architecture_options") or {}
        hp["architecture_options"] = {arch: opts.get(arch)} if isinstance(opts, dict) else {}
        out = train_one(keras, ops, tf, np, arch, hp, data, a.seed, a.epochs)
        # The pipeline's std is in its metrics.json: the same statistics must come out here.
        pstd = pm.get("normalization_std")
        if pstd and any(abs(p - q) > 1e-3 * max(1.0, abs(p)) for p, q in zip(pstd, out["normalization_std"])):
            log(f"warning: {arch}: normalisation std {out['normalization_std']} differs from the pipeline's {pstd}")
        out["pipeline_params"] = pm.get("params")
        print(json.dumps(out, sort_keys=True, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
