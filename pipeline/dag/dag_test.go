package dag

import (
	"errors"
	"reflect"
	"testing"
)

func TestSortOrdersDependenciesFirstAndBreaksTiesByName(t *testing.T) {
	g := New()
	g.Connect("train.vit", "augment.b")
	g.Connect("train.cnn", "augment.b")
	g.Connect("augment.b", "split.main")
	g.Connect("evaluate.cnn", "train.cnn")
	g.Connect("evaluate.cnn", "split.main")
	g.Add("lonely")
	got, err := g.Sort()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lonely", "split.main", "augment.b", "train.cnn", "evaluate.cnn", "train.vit"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestCyclesListsEveryCycleStably(t *testing.T) {
	g := New()
	g.Connect("a", "b")
	g.Connect("b", "a")
	g.Connect("b", "c")
	g.Connect("c", "d")
	g.Connect("d", "b")
	g.Connect("e", "e")
	g.Connect("f", "a")
	_, err := g.Sort()
	var ce *CycleError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a CycleError", err)
	}
	want := [][]string{{"a", "b"}, {"b", "c", "d"}, {"e"}}
	if !reflect.DeepEqual(ce.Cycles, want) {
		t.Fatalf("cycles %v, want %v", ce.Cycles, want)
	}
	if ce.Error() != "dependency cycle: a → b → a; b → c → d → b; e → e" {
		t.Fatalf("message %q", ce.Error())
	}
}

func TestReach(t *testing.T) {
	g := New()
	g.Connect("c", "b")
	g.Connect("b", "a")
	g.Connect("d", "a")
	if got := g.Ancestors("c"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("ancestors %v", got)
	}
	if got := g.Descendants("a"); !reflect.DeepEqual(got, []string{"b", "c", "d"}) {
		t.Fatalf("descendants %v", got)
	}
}
