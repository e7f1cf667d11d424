stage "gen" "a" {
  source = "data"
}

schedule "nightly" {
  cron     = "0 25 * * *" # ERROR: Invalid cron expression
  timezone = "Mars/Olympus" # ERROR: Unknown time zone
  targets  = [stage.gen.b] # ERROR: Reference to undeclared stage
  overlap  = "parallel" # ERROR: Invalid overlap policy
}
