stage "gen" "a" {
  source = "data"
}

stage "xfrom" "b" { # ERROR: Unknown stage kind
  input = stage.gen.a.out
}
