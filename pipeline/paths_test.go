package pipeline

import "testing"

func TestInside(t *testing.T) {
	for _, c := range []struct {
		path, dir string
		want      bool
	}{
		{"/a/b", "/a", true},
		{"/a", "/a", true},
		{"/a/b/c", "/a/b", true},
		{"/a/..b", "/a", true}, // a folder named "..b"
		{"/ab", "/a", false},
		{"/a", "/a/b", false},
		{"/", "/a", false},
		{"/a", "/", true},
		{"a/b", "a", true},
		{"b", "a", false},
		{"/a/b", "a", false}, // one absolute, one relative: not comparable
	} {
		if got := Inside(c.path, c.dir); got != c.want {
			t.Errorf("Inside(%q, %q) = %v, want %v", c.path, c.dir, got, c.want)
		}
	}
}
