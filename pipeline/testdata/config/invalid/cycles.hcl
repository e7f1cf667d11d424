stage "xform" "a" { # ERROR: Dependency cycle: xform.a → xform.b → xform.a
  input = stage.xform.b.out
}

stage "xform" "b" {
  input = stage.xform.a.out
}

stage "xform" "c" { # ERROR: Dependency cycle: xform.c → xform.c
  input = stage.xform.c.out
}
