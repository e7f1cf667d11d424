pipeline {
  seed = 1
}

pipeline { # ERROR: Duplicate pipeline block
  seed = 2
}

variable "x" {
  default = 1
}

variable "x" { # ERROR: Duplicate variable x
  default = 2
}

stage "gen" "a" {
  source = "data"
}

stage "gen" "a" { # ERROR: Duplicate stage gen.a
  source = "other"
}
