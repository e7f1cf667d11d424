package stages

import "slices"

// A class name is a plot's tick label, drawn at an angle under the x axis (and beside the y
// axis of a confusion matrix): a long one took the whole height of the image, leaving no
// room for the bars. Plots show a long name shortened, with an ellipsis in its middle; the
// JSON reports keep the full names. A character that is not graphic (a tab, a newline, a
// bidirectional override) is shown escaped, as the log shows it (logName): drawn as it is, a
// tab vanished ("tab\tx" read as a class "tabx") and a newline broke the label in two.

// maxLabel is the most characters a class name has as a plot's tick label.
const maxLabel = 28

// Parts of a shortened label: the characters kept at the start and end of a plain one
// (labelHead + 1 + labelTail is maxLabel), the fewest kept at the far end when the kept start
// or end grows to show where names differ, the characters shown after that place, and the
// start and end kept beside a middle part (labelEdge + 1 + labelMiddle + 1 + labelEdge).
const (
	labelHead   = 12
	labelTail   = maxLabel - 1 - labelHead
	labelMin    = 3
	labelAfter  = 4
	labelEdge   = 6
	labelMiddle = maxLabel - 2 - 2*labelEdge
)

// plotLabels returns the tick labels of classes: a name of up to maxLabel characters as it
// is, a longer one shortened to maxLabel, its start and end kept around an ellipsis. Names
// that would then read alike (the same start and end, different middles) are shortened
// around the first character in which they differ, counted from the nearer end, so that each
// label stays distinct. Each label then has the characters that are not graphic escaped
// (logName: "tab\tx" for a name with a tab in it).
func plotLabels(classes []string) []string {
	names := make([][]rune, len(classes))
	focus := make([]labelFocus, len(classes))
	labels := make([]string, len(classes))
	for i, c := range classes {
		names[i] = []rune(c)
		focus[i] = labelFocus{at: -1}
		labels[i] = shortLabel(names[i], focus[i])
	}
	// Each round shows every group of alike labels where its names part; a group that still
	// reads alike parts further on, so the rounds end.
	for range 4 * maxLabel {
		groups := map[string][]int{}
		for i, r := range names {
			if len(r) > maxLabel {
				groups[labels[i]] = append(groups[labels[i]], i)
			}
		}
		changed := false
		for _, g := range groups {
			if len(g) < 2 {
				continue
			}
			f := parting(names, g)
			for _, i := range g {
				if f != focus[i] {
					focus[i], labels[i], changed = f, shortLabel(names[i], f), true
				}
			}
		}
		if !changed {
			break
		}
	}
	for i, l := range labels {
		labels[i] = logName(l)
	}
	return labels
}

// labelFocus is the character a shortened label must show: the at-th from the start, or from
// the end when fromEnd is set; at is -1 for none.
type labelFocus struct {
	at      int
	fromEnd bool
}

// parting returns where the names of group first differ: after their common start, or
// before their common end when that is shorter.
func parting(names [][]rune, group []int) labelFocus {
	first := names[group[0]]
	prefix, suffix := len(first), len(first)
	for _, i := range group[1:] {
		r := names[i]
		p, s := 0, 0
		for p < min(prefix, len(r)) && r[p] == first[p] {
			p++
		}
		for s < min(suffix, len(r)) && r[len(r)-1-s] == first[len(first)-1-s] {
			s++
		}
		prefix, suffix = p, s
	}
	if prefix <= suffix {
		return labelFocus{at: prefix}
	}
	return labelFocus{at: suffix, fromEnd: true}
}

// shortLabel shortens name to maxLabel characters, keeping its start and end around an
// ellipsis; with a focus, the label shows that character and the labelAfter after it (before
// it, counting from the end), in a longer start (end), or in a middle part of its own
// between two ellipses when that start would leave fewer than labelMin for the end.
func shortLabel(name []rune, f labelFocus) string {
	n := len(name)
	if n <= maxLabel {
		return string(name)
	}
	if f.fromEnd {
		r := slices.Clone(name)
		slices.Reverse(r)
		out := []rune(shortLabel(r, labelFocus{at: f.at}))
		slices.Reverse(out)
		return string(out)
	}
	head := labelHead
	if f.at >= 0 {
		head = max(head, f.at+1+labelAfter)
	}
	if head <= maxLabel-1-labelMin {
		return string(name[:head]) + "…" + string(name[n-(maxLabel-1-head):])
	}
	// The character is labelEdge+1+labelAfter characters into every such label, so that
	// names differing there read differently.
	start := f.at - labelAfter
	if start+labelMiddle >= n-labelEdge {
		return string(name[:labelEdge]) + "…" + string(name[start:])
	}
	return string(name[:labelEdge]) + "…" + string(name[start:start+labelMiddle]) + "…" + string(name[n-labelEdge:])
}
