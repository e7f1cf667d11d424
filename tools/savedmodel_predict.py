"""Load a pipeline SavedModel with Python TensorFlow and print its probabilities as JSON.

Usage: savedmodel_predict.py MODEL_DIR IMAGES.f32 N H W C

IMAGES.f32 holds N*H*W*C little-endian float32 values (NHWC, 0-255). Used by the Go tests to
check that exported models load in Python and agree with the Go training session, that Python
sees their variables, and that they convert to TensorFlow Lite with the same answers.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(argv):
    model_dir, path = argv[1], argv[2]
    n, h, w, c = (int(v) for v in argv[3:7])
    images = np.fromfile(path, dtype="<f4").reshape(n, h, w, c)
    loaded = tf.saved_model.load(model_dir)
    fn = loaded.signatures["serving_default"]
    out = fn(images=tf.constant(images))["probabilities"].numpy()
    lite = tf.lite.Interpreter(
        model_content=tf.lite.TFLiteConverter.from_saved_model(model_dir).convert()
    ).get_signature_runner("serving_default")
    out_lite = lite(images=images)["probabilities"]
    json.dump(
        {
            "tensorflow": tf.__version__,
            "probabilities": out.tolist(),
            "variables": len(loaded.variables),
            "tflite_probabilities": out_lite.tolist(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv)
