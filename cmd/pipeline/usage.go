package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"pipeline/pipeline"
)

// onUsageErrors makes app and each of its commands answer a command line they cannot parse
// (usageError) instead of urfave/cli's "Incorrect Usage" followed by the whole help.
func onUsageErrors(app *cli.App) {
	app.OnUsageError = usageError("", append([]cli.Flag{cli.VersionFlag}, app.Flags...))
	for _, c := range app.Commands {
		c.OnUsageError = usageError(c.Name, c.Flags)
	}
}

// usageError returns the error of a command line that the command called name ("" for
// pipeline itself), taking flags, cannot parse: what is wrong, with the nearest flag for one
// it does not know ("did you mean --stage?"), and a line saying where its flags are listed.
func usageError(name string, flags []cli.Flag) cli.OnUsageErrorFunc {
	command := strings.TrimSpace("pipeline " + name)
	return func(_ *cli.Context, err error, _ bool) error {
		msg := err.Error()
		// The flag package's words, which name the flag with one dash whatever was typed.
		for _, prefix := range []string{"flag needs an argument: -", "for flag -"} {
			if before, flag, ok := strings.Cut(msg, prefix); ok {
				name, rest, hasRest := strings.Cut(flag, ":")
				msg = before + strings.TrimSuffix(prefix, "-") + dashed(name)
				if hasRest {
					msg += ":" + rest
				}
			}
		}
		if flag, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
			msg = fmt.Sprintf("%s has no flag %s", name, dashed(flag))
			if name == "" {
				msg = fmt.Sprintf("no flag %s before the command (a command's flags come after its name)", dashed(flag))
			}
			if like := pipeline.Suggest(flag, longNames(flags)); like != "" && len(flag) > 1 {
				msg += fmt.Sprintf("; did you mean %s?", dashed(like))
			}
		}
		return exitError{code: exitErr, err: fmt.Errorf("%s\nrun '%s --help' to see its flags", msg, command)}
	}
}

// longNames lists the names of flags, aliases and help's included, but for one-letter ones:
// any one letter is near any other.
func longNames(flags []cli.Flag) []string {
	var names []string
	for _, f := range append([]cli.Flag{cli.HelpFlag}, flags...) {
		for _, n := range f.Names() {
			if len(n) > 1 {
				names = append(names, n)
			}
		}
	}
	return names
}

// dashed writes a flag's name as the help lists it: -k, --top.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// commandAction is pipeline's action when no command is named: the help for no argument or
// "help" (a command's help for "help COMMAND"), and for a word that names no command an error
// with the nearest command, where urfave/cli would say "No help topic for 'plna'".
func commandAction(c *cli.Context) error {
	word := c.Args().First()
	if word == "help" && c.App.Command(c.Args().Get(1)) != nil {
		return cli.ShowCommandHelp(c, c.Args().Get(1))
	}
	if word == "help" && c.Args().Get(1) != "" && c.Args().Get(1) != "help" {
		word = c.Args().Get(1) // help for a command that does not exist
	} else if word == "" || word == "help" {
		return cli.ShowAppHelp(c)
	}
	var names []string
	for _, cmd := range c.App.VisibleCommands() {
		names = append(names, cmd.Names()...)
	}
	msg := fmt.Sprintf("no command %q", word)
	if like := pipeline.Suggest(word, names); like != "" && len(word) > 2 { // any two letters are near gc
		msg += fmt.Sprintf("; did you mean %s?", like)
	}
	return exitError{code: exitErr, err: fmt.Errorf("%s\nrun 'pipeline --help' to see the commands", msg)}
}
