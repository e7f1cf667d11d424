# The default pipeline: the embedded Fashion-MNIST subset (data/raw) through split, augment,
# training of a CNN, a VGG19 and a ViT, test-set evaluation, and promotion of the best model
# to models/final_models. Sized to finish in minutes on two cores; see docs/pipeline-hcl.md
# and docs/stages.md.

variable "epochs" {
  type        = number
  default     = 8
  description = "training epochs for every architecture"
}

pipeline {
  seed       = 42
  image_size = 28 # Fashion-MNIST's own size
}

stage "split" "main" {
  source      = "data/raw/train" # images from Fashion-MNIST's train file
  test_source = "data/raw/test"  # the held-out test set: Fashion-MNIST's test file only
  val         = 0.1
  channels    = 1
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 5
  ops         = ["flip_rotate_crop", "color_jitter"]
}

stage "train" "model" {
  for_each     = toset(["cnn", "vgg19", "vit"])
  architecture = each.key
  train        = stage.augment.balanced.output
  val          = stage.split.main.val
  epochs       = var.epochs
  batch_size   = 64
  schedule     = "cosine"
  learning_rate = {
    cnn   = 1e-3
    vgg19 = 5e-4
    vit   = 1e-3
  }[each.key]
  # Sizes for a CPU: the original CNN as it was; VGG19 at a quarter of its width with batch
  # norm; a small ViT on 4x4 patches.
  options = {
    cnn   = {}
    vgg19 = { width = 0.25, classifier = 256, pool = 1, batch_norm = true }
    vit   = { patch = 4, dim = 64, depth = 4, heads = 4, mlp_ratio = 2, dropout = 0.1 }
  }[each.key]
}

stage "evaluate" "test" {
  for_each = stage.train.model
  model    = each.value.saved_model
  data     = stage.split.main.test
}

stage "select" "best" {
  candidates = stage.evaluate.test
  metric     = "test_f1_macro"
  tie_break  = "test_top5"
  promote_to = "models/final_models"
}

schedule "nightly" {
  cron     = "0 3 * * *"
  timezone = "UTC"
  targets  = [stage.select.best]
  overlap  = "skip"
}
