package pipeline

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// describeMoves says which folders the files of moved (pairs of paths, before and after,
// in a source whose files before and after are was and now) moved between, in parentheses
// after the count of moves, or "" when it cannot tell. Each move goes from one folder to
// another (movedFolders: what lies below them the same). A pair of folders is a folder
// renamed when every file moved out of the first went to the second, every file moved into
// the second came from the first, and the first is gone and the second new (a manifest that
// lists no folders cannot tell those: its moves are taken as renames; nor can one name in two
// Unicode forms, which reads the same); each such pair is named, sorted, however many
// folders were renamed at once. Moves all between one pair of
// folders that is no rename are files moved between them (photos from one class to
// another); moves between several such pairs are left to the examples.
func describeMoves(moved [][2]string, was, now map[string]string) string {
	type pair struct{ from, to string }
	var pairs []pair
	seen := map[pair]bool{}
	outOf, into := map[string]int{}, map[string]int{} // how many folders files moved to, from
	within := false                                   // a file renamed in its folder
	for _, m := range moved {
		a, b := movedFolders(m[0], m[1])
		if a == b {
			within = true
			continue
		}
		if p := (pair{a, b}); !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
			outOf[a]++
			into[b]++
		}
	}
	// One folder in two Unicode forms reads the same: their code points tell them apart.
	sameName := func(p pair) bool { return norm.NFC.String(p.from) == norm.NFC.String(p.to) }
	noFolders := listsNoFolders(was) || listsNoFolders(now)
	var renamed []pair
	for _, p := range pairs {
		_, aStays := now[p.from+"/"]
		_, bWas := was[p.to+"/"]
		if p.from != "." && p.to != "." && outOf[p.from] == 1 && into[p.to] == 1 && (sameName(p) || noFolders || !aStays && !bWas) {
			renamed = append(renamed, p)
		}
	}
	switch {
	case len(renamed) == 1 && sameName(renamed[0]):
		return fmt.Sprintf(" (folder %+q renamed %+q: the same name in another Unicode form)", renamed[0].from, renamed[0].to)
	case len(renamed) == 1:
		return fmt.Sprintf(" (folder %s renamed %s)", showName(renamed[0].from), showName(renamed[0].to))
	case len(renamed) > 1:
		slices.SortFunc(renamed, func(x, y pair) int { return strings.Compare(x.from, y.from) })
		shown := make([]string, 0, 4)
		for _, p := range renamed[:min(3, len(renamed))] {
			if sameName(p) {
				shown = append(shown, fmt.Sprintf("%+q → %+q (the same name in another Unicode form)", p.from, p.to))
			} else {
				shown = append(shown, showName(p.from)+" → "+showName(p.to))
			}
		}
		what := "folders renamed"
		if len(renamed) > 3 {
			shown = append(shown, "…")
			what = fmt.Sprintf("%d folders renamed", len(renamed))
		}
		return " (" + what + ": " + strings.Join(shown, ", ") + ")"
	case len(pairs) == 1 && !within:
		from, to := "folder "+showName(pairs[0].from), showName(pairs[0].to)
		if pairs[0].from == "." {
			from = "the top folder"
		}
		if pairs[0].to == "." {
			to = "the top folder"
		}
		return fmt.Sprintf(" (from %s to %s)", from, to)
	}
	return ""
}
