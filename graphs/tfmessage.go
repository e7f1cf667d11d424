package graphs

import (
	"regexp"
	"slices"
	"strings"
)

// A TensorFlow session's error with several failed ops ("root errors") lists them between a
// header and a footer of counts (StatusGroup in TensorFlow's status.cc):
//
//	2 root error(s) found.
//	  (0) NOT_FOUND: …; No such file or directory
//		 [[{{node save/RestoreV2}}]]
//	  (1) NOT_FOUND: …
//	0 successful operations.
//	0 derived errors ignored.
var (
	rootErrorsHeader = regexp.MustCompile(`^\d+ root error\(s\) found\.$`)
	rootErrorStart   = regexp.MustCompile(`^\(\d+\) `)
	rootErrorsCount  = regexp.MustCompile(`^\d+ (successful operations|derived errors ignored)\.$`)
)

// recentLogs begins what TensorFlow appends to an error when it keeps a log history: the
// warnings it logged before (which repeat the error, with the C++ file that raised it).
const recentLogs = "Recent warning and error logs:"

// tfMessage is what a TensorFlow error says, on one line, without what it adds for graph
// authors: the node it failed in ("[[{{node save/SaveV2}}]]"), its hints (a full disk is a
// RESOURCE_EXHAUSTED error, which TensorFlow follows with advice on out-of-memory reports),
// the logs it may append, and, for several failed ops, the counts around them and the
// "(0) " before each (each distinct one said once). Its other lines are kept, joined by
// spaces; an error of one line (not TensorFlow's) is returned as it is, trimmed.
func tfMessage(err error) string {
	var roots [][]string // the lines of each root error; one when the error lists none
	group := false
	for line := range strings.Lines(err.Error()) {
		t := strings.TrimSpace(line)
		if t == recentLogs {
			break
		}
		switch {
		case t == "" || strings.HasPrefix(t, "[[") || strings.HasPrefix(t, "Hint:"):
		case len(roots) == 0 && !group && rootErrorsHeader.MatchString(t):
			group = true
		case group && rootErrorStart.MatchString(t):
			roots = append(roots, []string{rootErrorStart.ReplaceAllString(t, "")})
		case group && rootErrorsCount.MatchString(t):
		case len(roots) == 0:
			roots = append(roots, []string{t})
		default:
			roots[len(roots)-1] = append(roots[len(roots)-1], t)
		}
	}
	var said []string
	for _, lines := range roots {
		if m := strings.Join(lines, " "); !slices.Contains(said, m) {
			said = append(said, m)
		}
	}
	if len(said) == 0 { // nothing but what is left out: better than nothing
		return strings.Join(strings.Fields(err.Error()), " ")
	}
	msg := said[0]
	for _, m := range said[1:] {
		msg += " (also " + m + ")"
	}
	return msg
}
