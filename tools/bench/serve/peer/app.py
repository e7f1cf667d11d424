"""Flask peer of `pipeline serve`'s POST /predict, for tools/bench/serve/run.sh.

Serves the same promoted SavedModel the way the original system's API did (Flask, see
shared/ORIGINAL.md "API") and with the same request handling as cmd/pipeline/serve_handlers.go:

* multipart field `image`, bodies over 10 MB -> 413, no file -> 400, not an image -> 415,
  over 50 M pixels (from the header) -> 413, undecodable -> 400;
* Pillow decodes, the image is fitted to the model's input the way stages.fitImage does it
  (the model.json `resize` policy, default center_crop; bilinear; alpha over black; grey with
  the ITU-R 601 weights Go's color.GrayModel and Pillow's "L" share);
* tf.saved_model.load + signatures["serving_default"], input `images` float32 0-255 NHWC,
  output `probabilities`;
* {"predictions": [{"class_id", "class_name", "confidence"} x 5], "warning"?, "model"} with the
  warning when the five sum to < 0.9 or the first is < 0.6.

Run it either way:

    PEER_MODEL=models/final_models python app.py --port 5001          # Flask dev server, threaded
    PEER_MODEL=models/final_models gunicorn -w 2 -b 127.0.0.1:5002 app:app
"""

import argparse
import io
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

MAX_BODY = 10 << 20
MAX_PIXELS = 50_000_000
TOP_K = 5
WARN_SUM, WARN_TOP = 0.9, 0.6
LOW_CONFIDENCE = ("Low confidence in predictions: the subject might not be one of the "
                  "supported classes.")

Image.MAX_IMAGE_PIXELS = None  # the explicit MAX_PIXELS check below replaces Pillow's warning


def load(folder):
    """Loads a promotion folder (saved_model/ + model.json card) or a plain SavedModel."""
    sm = folder
    card = None
    if os.path.exists(os.path.join(folder, "saved_model", "model.json")):
        sm = os.path.join(folder, "saved_model")
        try:
            with open(os.path.join(folder, "model.json")) as f:
                card = json.load(f)
        except OSError:
            pass
    with open(os.path.join(sm, "model.json")) as f:
        info = json.load(f)
    loaded = tf.saved_model.load(sm)
    fn = loaded.signatures[info.get("signature", "serving_default")]
    model_id = card["id"] if card and card.get("id") else os.path.realpath(folder)
    return loaded, fn, info, model_id


MODEL_DIR = os.environ.get("PEER_MODEL", "models/final_models")
_loaded, _fn, INFO, MODEL_ID = load(MODEL_DIR)
SIZE = int(INFO["input"]["height"])
CHANNELS = int(INFO["input"]["channels"])
RESIZE = INFO.get("resize") or "center_crop"
CLASSES = INFO["classes"]
INPUT_KEY = INFO.get("input_key", "images")
OUTPUT_KEY = INFO.get("output_key", "probabilities")


def fit(img, size, policy, channels):
    """stages.fitImage with Pillow: size x size by policy, then grey (1) or RGB (3)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba).convert("RGB")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    w, h = img.size
    if policy == "squash":
        out = img.resize((size, size), Image.BILINEAR) if (w, h) != (size, size) else img
    elif policy == "pad":
        tw, th = size, size
        if w >= h:
            th = max(1, (h * size + w // 2) // w)
        else:
            tw = max(1, (w * size + h // 2) // h)
        r = img.resize((tw, th), Image.BILINEAR) if (w, h) != (tw, th) else img
        out = Image.new(img.mode, (size, size), 0)
        out.paste(r, ((size - tw) // 2, (size - th) // 2))
    else:  # center_crop
        side = min(w, h)
        x0, y0 = (w - side) // 2, (h - side) // 2
        out = img.crop((x0, y0, x0 + side, y0 + side)) if (w, h) != (side, side) else img
        if side != size:
            out = out.resize((size, size), Image.BILINEAR)
    return out.convert("L" if channels == 1 else "RGB")


def error(status, msg):
    resp = jsonify({"error": msg})
    resp.status_code = status
    return resp


app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = MAX_BODY


@app.errorhandler(413)
def too_large(_):
    return error(413, f"request larger than {MAX_BODY} bytes")


@app.post("/predict")
def predict():
    if request.mimetype != "multipart/form-data":
        return error(415, "send the image as multipart/form-data in a field named image")
    f = request.files.get("image")
    if f is None:
        return error(400, 'no file in the form field "image"')
    data = f.read()
    if not data:
        return error(400, "empty file")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return error(415, "not an image: JPEG, PNG, GIF, BMP or WebP expected")
    if img.width * img.height > MAX_PIXELS:
        return error(413, f"the image has too many pixels: {img.width}x{img.height}")
    try:
        img.load()
        x = np.asarray(fit(img, SIZE, RESIZE, CHANNELS), dtype=np.float32)
    except Exception as e:  # truncated or corrupt pixel data
        return error(400, f"the image could not be decoded: {e}")
    x = x.reshape(1, SIZE, SIZE, CHANNELS)
    try:
        p = _fn(**{INPUT_KEY: tf.constant(x)})[OUTPUT_KEY].numpy()[0]
    except Exception as e:
        return error(500, f"inference failed: {e}")
    top = np.argsort(-p, kind="stable")[:TOP_K]
    preds = [{"class_id": int(i), "class_name": CLASSES[i], "confidence": float(p[i])} for i in top]
    body = {"predictions": preds, "model": MODEL_ID}
    conf = [q["confidence"] for q in preds]
    if preds and (sum(conf) < WARN_SUM or conf[0] < WARN_TOP):
        body["warning"] = LOW_CONFIDENCE
    return jsonify(body)


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "model": MODEL_ID})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5001)
    a = ap.parse_args()
    # As the original ran: Flask's development server, one thread per request.
    app.run(host=a.host, port=a.port, threaded=True, debug=False)
