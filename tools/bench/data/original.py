#!/usr/bin/env python3
"""The original system's data preparation (Shroomlense, see shared/ORIGINAL.md), for the
split + augment benchmark in tools/bench/data/run.sh.

Single process, as the original ran, with Pillow doing the image work the way torchvision's
transforms do it on PIL images:

1. Static splits: stratified 80/10/10 per class, every file *copied* into
   OUT/train|val|test/<class>/ (the original's CREATE_STATIC_SPLITS).
2. Augmentation of train only: per class target = min(5 x count, largest count), counted on
   the training split (the formula as documented, not the original's whole-dataset floor
   division bug), the extra copies spread evenly over the originals. Each copy is saved as
   <stem>_aug<k>.jpg next to its original with Pillow's default JPEG quality (75), made by one
   of, chosen at random:
     a) RandomHorizontalFlip(0.5) + RandomRotation(30) + CenterCrop(85 %) + Resize(original size)
     b) ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2) + Resize(original size)
   The original augmented the full-size photos (it resized to 224 only when training).

With --same-work (a reference, not the original): the work `pipeline` does instead, with
Pillow: the split decodes every photo, centre-crops it to a square, resizes it to 224 x 224
(bilinear) and stores it as PNG without compression (zlib level 0, like the split stage's
default); augmentation then works on those 224 x 224 images and stores its copies the same way.

Per-class split counts follow the same rule as `pipeline`'s split stage (each set's share
rounded down, the images left over to the largest fractional parts; at least one val and one
test image for classes of three or more), so both sides augment the
same number of copies. Prints one JSON line: inputs, outputs, wall seconds, images/s.

    python original.py SRC OUT [--seed 42] [--max-augment 5] [--same-work]
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

from PIL import Image, ImageEnhance

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


def list_images(folder):
    return sorted(
        f for f in os.listdir(folder)
        if not f.startswith(".") and os.path.splitext(f)[1].lower() in EXTS
    )


def split_counts(n, val, test):
    # Largest remainder: each set's share rounded down, the images left over to the largest
    # fractional parts (test, then val, then train on a tie).
    exact = [n * test, n * val, n * (1 - val - test)]
    whole = [int(math.floor(e + 1e-9)) for e in exact]
    order = sorted(range(3), key=lambda i: -(exact[i] - whole[i]))  # stable: ties keep order
    for i in order[:n - sum(whole)]:
        whole[i] += 1
    t, v = whole[0], whole[1]
    if n >= 3:
        t, v = max(t, 1), max(v, 1)
    return t, v


# --- torchvision transforms on PIL images, re-implemented with the same PIL calls ---------

def hflip(img, rng, p=0.5):
    # RandomHorizontalFlip: F.hflip -> img.transpose(FLIP_LEFT_RIGHT)
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < p else img


def rotate(img, rng, degrees=30.0):
    # RandomRotation(30): angle ~ U(-30, 30); F.rotate -> img.rotate(angle, NEAREST,
    # expand=False, center=None, fillcolor=0 per band)
    angle = rng.uniform(-degrees, degrees)
    return img.rotate(angle, resample=Image.Resampling.NEAREST, expand=False,
                      fillcolor=(0,) * len(img.getbands()))


def center_crop_to(img, cw, ch):
    # CenterCrop((h, w)): top = int(round((H - h) / 2)), left likewise; img.crop(box)
    w, h = img.size
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def center_crop(img, frac=0.85):
    w, h = img.size
    return center_crop_to(img, int(w * frac), int(h * frac))


def resize(img, size):
    # Resize((h, w)): F.resize returns the image itself when it has that size already,
    # else img.resize((w, h), BILINEAR)
    if img.size == size:
        return img
    return img.resize(size, Image.Resampling.BILINEAR)


def color_jitter(img, rng, b=0.2, c=0.2, s=0.2):
    # ColorJitter: the adjustments in random order, factors ~ U(1 - x, 1 + x); for PIL
    # images F.adjust_brightness/contrast/saturation are ImageEnhance.Brightness/Contrast/Color
    ops = [
        lambda im: ImageEnhance.Brightness(im).enhance(rng.uniform(1 - b, 1 + b)),
        lambda im: ImageEnhance.Contrast(im).enhance(rng.uniform(1 - c, 1 + c)),
        lambda im: ImageEnhance.Color(im).enhance(rng.uniform(1 - s, 1 + s)),
    ]
    for i in rng.sample(range(3), 3):
        img = ops[i](img)
    return img


def aug_geometric(img, rng):
    size = img.size
    return resize(center_crop(rotate(hflip(img, rng), rng)), size)


def aug_color(img, rng):
    return resize(color_jitter(img, rng), img.size)


TRANSFORMS = [aug_geometric, aug_color]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--val", type=float, default=0.1)
    ap.add_argument("--test", type=float, default=0.1)
    ap.add_argument("--max-augment", type=int, default=5)
    ap.add_argument("--same-work", action="store_true",
                    help="do pipeline's work instead: store 224x224 PNGs at split time, augment those")
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    ext = ".png" if args.same_work else ".jpg"

    def store(src, dst):
        if not args.same_work:
            shutil.copy(src, dst)
            return
        with Image.open(src) as im:
            img = im.convert("RGB")
        side = min(img.size)
        img = center_crop_to(img, side, side).resize((args.size, args.size), Image.Resampling.BILINEAR)
        img.save(os.path.splitext(dst)[0] + ".png", compress_level=0)

    t0 = time.perf_counter()
    rng = random.Random(args.seed)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)  # CREATE_STATIC_SPLITS = True recreates the folders

    # 1. Static stratified split, copying files.
    classes = sorted(d for d in os.listdir(args.src)
                     if os.path.isdir(os.path.join(args.src, d)) and not d.startswith("."))
    inputs = 0
    for c in classes:
        files = list_images(os.path.join(args.src, c))
        inputs += len(files)
        rng.shuffle(files)
        t, v = split_counts(len(files), args.val, args.test)
        parts = {"test": files[:t], "val": files[t:t + v], "train": files[t + v:]}
        for split, names in parts.items():
            dst = os.path.join(args.out, split, c)
            os.makedirs(dst, exist_ok=True)
            for f in names:
                store(os.path.join(args.src, c, f), os.path.join(dst, f))
    t_split = time.perf_counter() - t0

    # 2. Augment train only.
    train = os.path.join(args.out, "train")
    counts = {c: len(list_images(os.path.join(train, c))) for c in classes}
    largest = max(counts.values())
    copies = 0
    for c in classes:
        folder = os.path.join(train, c)
        files = list_images(folder)
        n = len(files)
        target = min(args.max_augment * n, largest)
        extra = max(0, target - n)
        for i, f in enumerate(files):
            k_max = extra // n + (1 if i < extra % n else 0)
            if k_max == 0:
                continue
            with Image.open(os.path.join(folder, f)) as im:
                img = im.convert("RGB")
            stem = os.path.splitext(f)[0]
            for k in range(1, k_max + 1):
                out = rng.choice(TRANSFORMS)(img, rng)
                path = os.path.join(folder, f"{stem}_aug{k}{ext}")
                if args.same_work:
                    out.save(path, compress_level=0)
                else:
                    out.save(path)  # JPEG, Pillow's default quality (75)
                copies += 1
    wall = time.perf_counter() - t0
    print(json.dumps({
        "impl": "original-same-work" if args.same_work else "original", "inputs": inputs, "split_copies": inputs, "aug_copies": copies,
        "outputs": inputs + copies, "split_s": round(t_split, 3),
        "augment_s": round(wall - t_split, 3), "wall_s": round(wall, 3),
        "images_per_s": round(inputs / wall, 2),
        "pillow": Image.__version__, "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
