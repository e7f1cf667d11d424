stage "gen" "a" {
  source = "data"
}

stage "xfrom" "b" { # ERROR: Unknown stage kind
  input = stage.gen.a.out
}

stage "xform" "c" {
  input = stage.xform.b.out # ERROR: Reference to undeclared stage
}
