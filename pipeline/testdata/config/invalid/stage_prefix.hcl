stage "gen" "a" {
  for_each = toset(["x", "y"])
  source   = "data"
}

stage "xform" "b" {
  input = gen.a["x"].out # ERROR: Unknown variable
}

stage "xform" "c" {
  for_each = gen.a # ERROR: Unknown variable
  input    = stage.gen.a[each.key].out
}

stage "join" "d" {
  inputs = { for k, v in bulk.e : k => v.report } # ERROR: Unknown variable
}

stage "xform" "e" {
  input      = stage.gen.a["y"].out
  depends_on = [xform.b] # ERROR: Invalid depends_on entry
}

stage "xform" "f" {
  input = nope.a.out # ERROR: Unknown variable
}

stage "xform" "g" {
  input = xform.bb.out # ERROR: Unknown variable
}

variable "dep" {
  default = "x"
}

stage "xform" "h" {
  input      = stage.gen.a["y"].out
  depends_on = [
    var.dep,       # ERROR: Invalid depends_on entry
    Stage.xform.b, # ERROR: Invalid depends_on entry
  ]
}
