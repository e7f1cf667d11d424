package pipeline

import (
	"strings"
	"testing"
)

func TestPluralAndArticleAgreeWithTheirWord(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Plural(0, "image", "images"), "0 images"},
		{Plural(1, "image", "images"), "1 image"},
		{Plural(2, "class", "classes"), "2 classes"},
		{WithArticle("object"), "an object"},
		{WithArticle("evaluate"), "an evaluate"},
		{WithArticle("number"), "a number"},
		{WithArticle("list of string"), "a list of string"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if s := Suggest("ptach", []string{"patch", "dim"}); s != "patch" {
		t.Errorf("Suggest = %q", s)
	}
}

// TestForEachOfTheWrongTypeNamesTheTypeWithItsArticle checks the for_each diagnostics name
// the value's type with the article it takes.
func TestForEachOfTheWrongTypeNamesTheTypeWithItsArticle(t *testing.T) {
	for src, want := range map[string]string{
		`for_each = 3`:          "The value is a number.",
		`for_each = ["x", "y"]`: "The value is a tuple; a list may hold duplicates",
	} {
		diags := loadAndBuild("each.hcl", []byte("stage \"gen\" \"g\" {\n  "+src+"\n  source = \"data\"\n}\n"), nil)
		if !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: diagnostics %q lack %q", src, diags.Error(), want)
		}
	}
}
