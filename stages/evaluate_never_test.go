package stages

import (
	"slices"
	"testing"
)

func TestNeverRightNamesClassesWithNoCorrectPrediction(t *testing.T) {
	scores := []ClassScore{
		{Class: "a", Recall: 0.5, Support: 10},
		{Class: "b", Recall: 0, Support: 7},
		{Class: "c", Recall: 0, Support: 3},
		{Class: "d", Recall: 0, Support: 0}, // no test images: nothing to get right
		{Class: "e", Recall: 0, Support: 3},
	}
	if got := neverRight(scores); !slices.Equal(got, []string{`"c" (3)`, `"e" (3)`, `"b" (7)`}) {
		t.Fatalf("neverRight: %q", got)
	}
	if got := listSome([]string{"1", "2", "3"}, 2); got != "1, 2 and 1 more" {
		t.Fatalf("listSome: %q", got)
	}
}
