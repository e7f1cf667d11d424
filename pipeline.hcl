# The default pipeline: split the embedded dataset, balance the training classes, train a CNN,
# a VGG19 and a ViT, evaluate each on the test split and promote the best.

pipeline {
  seed       = 42
  image_size = 32
}

stage "split" "main" {
  source = "data/raw"
  val    = 0.1
  test   = 0.1
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 5
  ops         = ["flip_rotate_crop", "color_jitter"]
}

stage "train" "model" {
  for_each      = toset(["cnn", "vgg19", "vit"])
  architecture  = each.key
  train         = stage.augment.balanced.output
  val           = stage.split.main.val
  epochs        = 10
  batch_size    = 32
}

stage "evaluate" "test" {
  for_each = stage.train.model
  model    = each.value.model
  data     = stage.split.main.test
}

stage "select" "best" {
  candidates = stage.evaluate.test
  metric     = "test_f1_macro"
  promote_to = "models/final_models"
}
