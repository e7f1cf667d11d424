stage "gen" "a" {
  source = "data"
}

stage "xform" "list" {
  for_each = ["x", "y"] # ERROR: Invalid for_each argument
  input    = stage.gen.a.out
}

stage "xform" "number" {
  for_each = 3 # ERROR: Invalid for_each argument
  input    = stage.gen.a.out
}

stage "xform" "ok" {
  for_each = toset(["x", "y"])
  input    = stage.gen.a.out
  suffix   = each.key
}

stage "xform" "wrongkey" {
  input = stage.xform.ok["z"].out # ERROR: Unknown stage instance
}

stage "xform" "undeclared" {
  for_each = stage.xform.okk # ERROR: Reference to undeclared stage
  input    = stage.gen.a.out
}
