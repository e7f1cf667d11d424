stage "gen" "a" {
  source = "data"
  repeat = = 2 # ERROR: Invalid expression
}
