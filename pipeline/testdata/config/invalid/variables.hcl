# -var epochs=abc
# -var seed=[1]

variable "epochs" { # ERROR: Invalid value for variable
  type    = number
  default = 10
}

variable "keys" { # ERROR: No value for variable
  type = set(string)
}

variable "seed" { # ERROR: Invalid value for variable
  type    = number
  default = 1
}

variable "rounds" {
  type    = number
  default = "three" # ERROR: Invalid default value for variable
}

variable "label" {
  default = nope # ERROR: Variables not allowed
}

pipeline {
  seed   = var.seed
  repeat = var.epochs + 1
  models = var.keys
}

stage "gen" "a" {
  source = "data"
  repeat = var.rounds
  label  = var.label
}

stage "xform" "b" {
  for_each = toset(["x", "y", "z"])
  input    = stage.gen.a.out
  epochs   = var.epochs
  suffix   = "${each.key}${var.epochs}"
}

stage "xform" "c" {
  for_each = var.keys
  input    = stage.gen.a.out
}

stage "xform" "d" {
  for_each = stage.xform.c
  input    = each.value.out
  epochs   = var.epochs * 2
}

stage "xform" "e" {
  for_each = pipeline.models
  input    = stage.gen.a.out
}
