package stages

import (
	"slices"
	"testing"

	"pipeline/pipeline"
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
	if got := pipeline.ListSome([]string{"1", "2", "3"}, 2); got != "1, 2 and 1 more" {
		t.Fatalf("ListSome: %q", got)
	}
}

func TestFileURLEscapesWhatWouldNotReadAsAPath(t *testing.T) {
	for rel, want := range map[string]string{
		"cnn/metrics.png":     "cnn/metrics.png",
		"cnn.x:y/metrics.png": "./cnn.x:y/metrics.png",
		"cnn.a#b/metrics.png": "cnn.a%23b/metrics.png",
		"cnn.q?r/m.png":       "cnn.q%3Fr/m.png",
		"a b/m.png":           "a%20b/m.png",
	} {
		if got := string(fileURL(rel)); got != want {
			t.Errorf("fileURL(%q) = %q, want %q", rel, got, want)
		}
	}
}
