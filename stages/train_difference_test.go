package stages

import "testing"

func TestDatasetDifferenceSaysWhatDiffers(t *testing.T) {
	train := &Manifest{Classes: []string{"a", "b", "c"}, Size: 60, Channels: 1}
	for _, c := range []struct {
		val  Manifest
		want string
	}{
		{Manifest{Classes: []string{"a", "b", "c"}, Size: 60, Channels: 1}, ""},
		{Manifest{Classes: []string{"a", "b", "c"}, Size: 64, Channels: 3}, "image size 60 and 64 px; channels 1 and 3"},
		{Manifest{Classes: []string{"a", "b", "d"}, Size: 60, Channels: 1}, `the val set has classes the train set lacks ("d"); the val set lacks classes of the train set ("c")`},
		{Manifest{Classes: []string{"b", "a", "c"}, Size: 60, Channels: 1}, "the same classes in another order"},
	} {
		if got := datasetDifference(train, &c.val); got != c.want {
			t.Errorf("%+v: %q, want %q", c.val, got, c.want)
		}
	}
}
