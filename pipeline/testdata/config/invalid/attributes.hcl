stage "gen" "a" {
  source = "data"
  repaet = 2 # ERROR: Unsupported argument
}

stage "xform" "b" { # ERROR: Missing required argument
  suffix = "!"
}

stage "xform" "c" {
  input  = stage.gen.a.out
  epochs = "many" # ERROR: Incorrect attribute value type
}

stage "gen" "d" {
  source = "data"
  repeat = 0 # ERROR: Invalid repeat
}
