stage "gen" "a" {
  source = "data"
}

schedule "nightly" {
  cron     = "0 25 * * *" # ERROR: Invalid cron expression
  timezone = "Mars/Olympus" # ERROR: Unknown time zone
  targets  = [stage.gen.b] # ERROR: Reference to undeclared stage
  overlap  = "parallel" # ERROR: Invalid overlap policy
}

schedule "never" {
  cron    = "0 0 30 2 *" # ERROR: Cron expression never fires
  targets = [stage.gen.a]
}

schedule "backwards" {
  cron    = "@every -5m" # ERROR: Invalid @every interval
  targets = [stage.gen.a]
}

schedule "busy" {
  cron    = "@every 30s" # ERROR: Invalid @every interval
  targets = [stage.gen.a]
}

schedule "zoned" {
  cron     = "CRON_TZ=Europe/Copenhagen 0 3 * * *" # ERROR: Time zone in the cron expression
  timezone = "" # ERROR: Empty time zone
  targets  = [stage.gen.a]
}

schedule "blank" {
  cron    = "" # ERROR: Invalid cron expression
  targets = [stage.gen.a]
}

schedule "fine" {
  cron    = "@every 1h30m"
  targets = [stage.gen.a]
}

schedule "leap" {
  cron    = "0 0 29 2 *"
  targets = [stage.gen.a]
}

schedule "local" {
  cron     = "@daily"
  timezone = "Local" # ERROR: Unknown time zone
  targets  = [stage.gen.a]
}

schedule "nothing" {
  cron    = "@daily"
  targets = [] # ERROR: No schedule targets
}

schedule "output" {
  cron    = "@daily"
  targets = [stage.gen.a.out] # ERROR: Invalid schedule target
}

schedule "spaced" {
  cron    = "@every 1 m" # ERROR: Invalid cron expression
  targets = [stage.gen.a, stage.gen.a]
}
