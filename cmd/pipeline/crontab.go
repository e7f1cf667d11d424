package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"pipeline/pipeline"
)

// crontabNotes is what --print-crontab says of cron's time zones and overlapping runs.
const crontabNotes = `# CRON_TZ sets the time zone of the lines after it. cronie (Fedora, RHEL, Arch, openSUSE) reads
# it; Debian's and Ubuntu's cron (3.0pl1) do not: there every line follows the machine's time
# zone, and a schedule with another timezone must be converted by hand.
# cron starts a line at its time even while an earlier run is going: the new run finds the
# workspace lock held, fails at once ("workspace is in use", exit status 1, in cron.log), and
# that time is lost, as with overlap = "skip". overlap = "queue" cannot be reproduced by cron.
`

// printCrontab prints crontab lines that run each schedule's targets with the OS's cron:
// `run` with the -var and --runs-dir flags given to schedule, its output appended to cron.log in
// the runs folder, which the line makes first (the shell opens the log before run could). Each
// schedule gets its own CRON_TZ line, as the variable holds for every later line: the
// schedule's timezone, or the machine's for a schedule without one. Comments in the output say
// where cron differs from pipeline schedule.
func printCrontab(c *cli.Context, l *loaded) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	file, err := filepath.Abs(l.cfg.Path)
	if err != nil {
		return err
	}
	ws := filepath.Dir(file)
	runsDir := c.String("runs-dir")
	for _, v := range append([]string{exe, file, runsDir}, c.StringSlice("var")...) {
		if err := crontabValue(v); err != nil {
			return err
		}
	}
	var flags []string
	for _, v := range c.StringSlice("var") {
		flags = append(flags, "--var", shellQuote(v))
	}
	if c.IsSet("runs-dir") {
		flags = append(flags, "--runs-dir", shellQuote(runsDir))
	}
	absRuns := pipeline.InWorkspace(ws, runsDir)
	zone, from := localZone()
	var b strings.Builder
	fmt.Fprintf(&b, "# pipeline schedules of %s (install with: crontab -e)\n", file)
	fmt.Fprintf(&b, "# Each line runs `pipeline run` on a schedule's targets, its output appended to %s.\n", filepath.Join(absRuns, "cron.log"))
	b.WriteString(crontabNotes)
	for _, s := range l.cfg.Schedules {
		fmt.Fprintf(&b, "\n# schedule %q\n", s.Name)
		if strings.HasPrefix(s.Cron, "@every") {
			fmt.Fprintf(&b, "# cron = %q has no crontab form: use pipeline schedule, or a systemd timer (OnUnitActiveSec=)\n", s.Cron)
			continue
		}
		if s.Overlap == "queue" {
			b.WriteString("# overlap = \"queue\" cannot be reproduced by cron: a time that comes during a run is lost (see above)\n")
		}
		switch tz := s.Timezone; {
		case tz == "Local" && zone != "":
			fmt.Fprintf(&b, "# the schedule sets no timezone: the zone pipeline schedule follows here (%s)\nCRON_TZ=%s\n", from, zone)
		case tz == "Local":
			b.WriteString("# the schedule sets no timezone, and the machine's could not be named: CRON_TZ=\"\" makes\n" +
				"# cronie use its own (the machine's) instead of one an earlier line set\nCRON_TZ=\"\"\n")
		default:
			fmt.Fprintf(&b, "CRON_TZ=%s\n", tz)
		}
		args := []string{shellQuote(exe), "run", shellQuote(filepath.Base(file))}
		for _, t := range l.engine.Workflow.ScheduleTargets(s) {
			if err := crontabValue(t); err != nil {
				return err
			}
			args = append(args, "--stage", shellQuote(t))
		}
		args = append(append(args, flags...), "--quiet")
		cmd := fmt.Sprintf("cd %s && mkdir -p %s && %s >> %s 2>&1", shellQuote(ws), shellQuote(absRuns),
			strings.Join(args, " "), shellQuote(filepath.Join(absRuns, "cron.log")))
		// cron ends the command at a '%' (the rest is its standard input) unless escaped.
		fmt.Fprintf(&b, "%s %s\n", s.Cron, strings.ReplaceAll(cmd, "%", `\%`))
	}
	_, err = io.WriteString(c.App.Writer, b.String())
	return err
}

// crontabValue returns an error when v cannot go into a crontab line: a line break would end
// the line.
func crontabValue(v string) error {
	if strings.ContainsAny(v, "\n\r") {
		return fmt.Errorf("%q cannot be written on a crontab line (it holds a line break)", v)
	}
	return nil
}

// shellQuote quotes s for sh as one word: as it is when it holds only characters sh takes
// literally, else in single quotes, where a single quote of s ends the quoting, is written
// escaped with a backslash, and quoting starts again.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,+@-=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// localtimeFile and timezoneFile name the machine's time zone: the first is a symbolic link
// into a zoneinfo folder on most systems, the second (Debian's) holds the name. Tests change
// them.
var localtimeFile, timezoneFile = "/etc/localtime", "/etc/timezone"

// localZone returns the IANA name of time.Local, the zone pipeline schedule follows for a
// schedule without timezone, and where Go took it from, for --print-crontab's CRON_TZ and the
// log: TZ when it is set, else the machine's zone (machineZone). Go reads TZ as the name of a
// zone or as the path of a zone file, and takes UTC when TZ is empty or names no zone it can
// load; time.Local is then named after TZ, or "UTC", and "Local" only when it is the
// machine's. The name is "" when it cannot be told.
func localZone() (name, from string) {
	local := time.Local.String()
	switch {
	case local == "Local":
		return machineZone(), "the machine's, " + localtimeFile
	case strings.HasPrefix(local, "/"):
		return zoneFileName(local), "TZ=" + local
	}
	tz, set := os.LookupEnv("TZ")
	switch {
	case !set: // and Go found no /etc/localtime
		return local, "TZ is not set and the machine names no zone, so Go takes UTC"
	case local == "UTC" && strings.TrimPrefix(tz, ":") != "UTC":
		return local, fmt.Sprintf("TZ=%q names no zone, so Go takes UTC", tz)
	}
	return local, "TZ=" + tz
}

// zoneFileName returns the IANA name of the zone file at path, a symbolic link into a zoneinfo
// folder or a file in one, or "" when it cannot be told.
func zoneFileName(path string) string {
	for _, read := range []func(string) (string, error){os.Readlink, filepath.EvalSymlinks} {
		if target, err := read(path); err == nil {
			if i := strings.LastIndex(target, "zoneinfo/"); i >= 0 {
				name := strings.TrimPrefix(target[i+len("zoneinfo/"):], "posix/")
				if _, err := time.LoadLocation(name); err == nil && name != "" && name != "localtime" {
					return name
				}
			}
		}
	}
	return ""
}

// machineZone returns the IANA name of the machine's time zone, the one cron follows for a line
// without CRON_TZ, or "" when it cannot be told.
func machineZone() string {
	if name := zoneFileName(localtimeFile); name != "" {
		return name
	}
	if b, err := os.ReadFile(timezoneFile); err == nil {
		name := strings.TrimSpace(string(b))
		if _, err := time.LoadLocation(name); err == nil && name != "" {
			return name
		}
	}
	return ""
}
