stage "xform" "a" { # ERROR: Dependency cycle: xform.a → xform.b → xform.a
  input = stage.xform.b.out
}

stage "xform" "b" {
  input = stage.xform.a.out
}

stage "xform" "c" {
  input = stage.xform.c.out # ERROR: Stage refers to itself
}

stage "xform" "d" {
  input      = "x"
  depends_on = [stage.xform.d] # ERROR: Stage depends on itself
}

stage "xform" "e" { # ERROR: Dependency cycle: xform.e → xform.f → xform.e
  input      = "x"
  depends_on = [stage.xform.f]
}

stage "xform" "f" {
  input      = "y"
  depends_on = [stage.xform.e]
}
