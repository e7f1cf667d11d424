variable "suffix" {
  default = "!"
}

stage "gen" "a" {
  source = "data"
}

stage "xform" "b" {
  input  = stage.gen.aa.out # ERROR: Reference to undeclared stage
  suffix = var.sufix # ERROR: Reference to undeclared variable
}

stage "xform" "c" {
  input = stage.gen.a.outt # ERROR: Unknown stage output
}

stage "xform" "d" {
  input  = stage.gen.a.out
  suffix = each.key # ERROR: Reference to "each" without for_each
}

stage "xform" "e" {
  input  = stage.gen.a.out
  suffix = pipeline.colour # ERROR: Unknown pipeline setting
}
