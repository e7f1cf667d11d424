package pipeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/robfig/cron/v3"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// suggest returns the option closest to given when it is close enough to be a likely typo.
func suggest(given string, options []string) string {
	best, bestDist := "", 3
	for _, o := range options {
		if d := levenshtein.Distance(given, o, nil); d < bestDist {
			best, bestDist = o, d
		}
	}
	return best
}

// functions are the HCL functions available in pipeline files: the go-cty standard library
// under the names Terraform users know.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc,
		"max": stdlib.MaxFunc, "min": stdlib.MinFunc, "pow": stdlib.PowFunc, "log": stdlib.LogFunc,
		"parseint": stdlib.ParseIntFunc, "signum": stdlib.SignumFunc,
		"chomp": stdlib.ChompFunc, "format": stdlib.FormatFunc, "formatlist": stdlib.FormatListFunc,
		"indent": stdlib.IndentFunc, "join": stdlib.JoinFunc, "lower": stdlib.LowerFunc,
		"upper": stdlib.UpperFunc, "replace": stdlib.ReplaceFunc, "split": stdlib.SplitFunc,
		"strrev": stdlib.ReverseFunc, "substr": stdlib.SubstrFunc, "title": stdlib.TitleFunc,
		"trim": stdlib.TrimFunc, "trimprefix": stdlib.TrimPrefixFunc, "trimsuffix": stdlib.TrimSuffixFunc,
		"trimspace": stdlib.TrimSpaceFunc, "regex": stdlib.RegexFunc, "regexall": stdlib.RegexAllFunc,
		"chunklist": stdlib.ChunklistFunc, "coalesce": stdlib.CoalesceFunc, "coalescelist": stdlib.CoalesceListFunc,
		"compact": stdlib.CompactFunc, "concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc,
		"distinct": stdlib.DistinctFunc, "element": stdlib.ElementFunc, "flatten": stdlib.FlattenFunc,
		"index": stdlib.IndexFunc, "keys": stdlib.KeysFunc, "length": stdlib.LengthFunc,
		"lookup": stdlib.LookupFunc, "merge": stdlib.MergeFunc, "range": stdlib.RangeFunc,
		"reverse": stdlib.ReverseListFunc, "setintersection": stdlib.SetIntersectionFunc,
		"setproduct": stdlib.SetProductFunc, "setsubtract": stdlib.SetSubtractFunc,
		"setunion": stdlib.SetUnionFunc, "slice": stdlib.SliceFunc, "sort": stdlib.SortFunc,
		"values": stdlib.ValuesFunc, "zipmap": stdlib.ZipmapFunc,
		"jsonencode": stdlib.JSONEncodeFunc, "jsondecode": stdlib.JSONDecodeFunc,
		"csvdecode": stdlib.CSVDecodeFunc,
		"tobool":    stdlib.MakeToFunc(cty.Bool), "tonumber": stdlib.MakeToFunc(cty.Number),
		"tostring": stdlib.MakeToFunc(cty.String), "tolist": stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"toset": stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)), "tomap": stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"try": tryfunc.TryFunc, "can": tryfunc.CanFunc,
	}
}

// convertTo converts v to t (unconstrained when t is cty.DynamicPseudoType).
func convertTo(v cty.Value, t cty.Type) (cty.Value, error) {
	if t == cty.DynamicPseudoType {
		return v, nil
	}
	return convert.Convert(v, t)
}

// minEvery is the shortest @every interval a schedule may have. robfig/cron rounds a shorter
// one, negative and zero included, up to a second, which would retrain every second.
const minEvery = time.Minute

// cronProblem returns the summary and detail of the diagnostic for a cron expression that
// pipeline schedule cannot fire at sensible times, or two empty strings when there is none:
// one robfig/cron cannot parse; one with a time zone prefix (CRON_TZ=, TZ=), which belongs in
// the timezone attribute, where --print-crontab and the log see it; @every with a duration
// under minEvery; and one that no time in the five years after now matches (30 February), for
// which robfig/cron's Next returns the zero time, due at once and forever.
func cronProblem(expr string, now time.Time) (summary, detail string) {
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return "Time zone in the cron expression", fmt.Sprintf("cron is %q. Give the time zone in the schedule's timezone attribute "+
			"(timezone = \"Europe/Copenhagen\") and leave only the time fields in cron.", expr)
	}
	c, err := parseCron(expr)
	if err != nil {
		return "Invalid cron expression", cronFieldProblem(expr, err)
	}
	if every, ok := strings.CutPrefix(expr, "@every "); ok {
		d, err := time.ParseDuration(every)
		switch {
		case err == nil && d <= 0:
			return "Invalid @every interval", fmt.Sprintf("%q is not a positive duration. @every takes one of a minute or more, such as \"@every 30m\" or \"@every 1h30m\".", every)
		case err == nil && d < minEvery:
			return "Invalid @every interval", fmt.Sprintf("%q is shorter than a minute, the shortest interval allowed. Use, say, \"@every 30m\" or \"@every 1h30m\".", every)
		}
	}
	if next := c.Next(now); next.IsZero() || !next.After(now) {
		return "Cron expression never fires", fmt.Sprintf("No time in the next five years matches %q, so the schedule would never fire. "+
			"Check the day-of-month and month fields: a day the month does not have (30 February, 31 April) matches nothing.", expr)
	}
	return "", ""
}

// cronFields are the five fields of a cron expression, in order, with the values each takes.
var cronFields = []struct{ name, takes string }{
	{"minute", "0 to 59"},
	{"hour", "0 to 23"},
	{"day-of-month", "1 to 31"},
	{"month", "1 to 12, or jan to dec"},
	{"day-of-week", "0 to 6 (Sunday is 0), or sun to sat"},
}

// cronFieldProblem says what is wrong with cron expression expr, which robfig/cron refused
// with err: the field at fault by name, with the values it takes, rather than the parser's
// "end of range (25) above maximum (23): 25". An expression whose fault is not in one field
// (a descriptor, the number of fields) gets the parser's words and how to write one.
func cronFieldProblem(expr string, err error) string {
	const how = " Use five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\", or a descriptor such as \"@daily\"."
	fields := strings.Fields(expr)
	switch {
	case strings.HasPrefix(expr, "@every"):
		every := strings.TrimSpace(strings.TrimPrefix(expr, "@every"))
		return fmt.Sprintf("%q is not a duration @every reads: write it without spaces, in h, m and s, such as \"@every 30m\" or \"@every 1h30m\".", every)
	case strings.HasPrefix(expr, "@"):
		return err.Error() + "." + how
	case len(fields) != len(cronFields):
		return fmt.Sprintf("%q has %s.", expr, Plural(len(fields), "field", "fields")) + how
	}
	ordinals := []string{"first", "second", "third", "fourth", "fifth"}
	for i, f := range fields {
		probe := []string{"*", "*", "*", "*", "*"}
		probe[i] = f
		_, ferr := cron.ParseStandard(strings.Join(probe, " "))
		if ferr == nil {
			continue
		}
		why := "out of range"
		if msg := ferr.Error(); !strings.Contains(msg, "above maximum") && !strings.Contains(msg, "below minimum") {
			msg, _, _ = strings.Cut(msg, ": strconv.") // "failed to parse int from fry"
			why = "not readable (" + msg + ")"
		}
		return fmt.Sprintf("The %s field (the %s of five) is %q, %s: it takes %s, or ranges (1-5), lists (1,15) and steps (*/2) of those.",
			cronFields[i].name, ordinals[i], f, why, cronFields[i].takes)
	}
	return err.Error() + "." + how
}

// checkTimezone checks a schedule's timezone attribute: an IANA name. The empty name, which
// time.LoadLocation takes for UTC, is refused: left out, the attribute means the machine's
// zone, and "" reads as that too.
func checkTimezone(name string) (summary, detail string) {
	if name == "" {
		return "Empty time zone", "timezone is \"\". Leave the attribute out for the machine's time zone (TZ when it is set, else the system's), " +
			"or give an IANA name such as \"Europe/Copenhagen\" or \"UTC\"."
	}
	if name == "Local" { // Go's name for the machine's zone, not an IANA one
		return "Unknown time zone", "timezone is \"Local\". Leave the attribute out for the machine's time zone (TZ when it is set, else the system's), " +
			"or give an IANA name such as \"Europe/Copenhagen\" or \"UTC\"."
	}
	if _, err := time.LoadLocation(name); err != nil {
		return "Unknown time zone", fmt.Sprintf("%s. Use an IANA name such as \"Europe/Copenhagen\" or \"UTC\".", err)
	}
	return "", ""
}
