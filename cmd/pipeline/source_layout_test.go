package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAndPlanWarnOfWhatTheSourceListingShows checks that validate and plan warn, at
// the source attribute, of class folders that differ only in letter case (a question: the
// split runs) and of a class folder whose name is not UTF-8 (the split would fail on it),
// before anything runs; and that run says the first in the split's log on the console.
func TestValidateAndPlanWarnOfWhatTheSourceListingShows(t *testing.T) {
	dir := workspace(t, splitOnly)
	file := filepath.Join(dir, "pipeline.hcl")
	if err := os.Rename(filepath.Join(dir, "raw", "class 1"), filepath.Join(dir, "raw", "CLASS 0")); err != nil {
		t.Fatal(err)
	}
	clash := `source "raw": class folders "CLASS 0" and "class 0" differ only in letter case`
	for cmd, code := range map[string]int{"validate": exitOK, "plan": exitPending} {
		got, out, errs := runCLI(cmd, file)
		flat := strings.Join(strings.Fields(errs), " ")
		if got != code || !strings.Contains(errs, "Questionable source") || !strings.Contains(flat, clash) || !strings.Contains(errs, "line 3") {
			t.Errorf("%s: exit %d, want %d and a warning at line 3: %s\n%s%s", cmd, got, code, clash, out, errs)
		}
	}
	if code, out, errs := runCLI("run", file); code != exitOK || !strings.Contains(errs, `warning: class folders "CLASS 0" and "class 0" in raw differ only in letter case`) {
		t.Errorf("run: exit %d\n%s%s", code, out, errs)
	}

	os.MkdirAll(filepath.Join(dir, "raw", "caf\xe9"), 0o755)
	bad := `source "raw": class folder "caf\xe9": the name is not valid UTF-8; rename the folder.`
	for _, cmd := range []string{"validate", "plan"} {
		_, out, errs := runCLI(cmd, file)
		if !strings.Contains(errs, "Unusable source") || !strings.Contains(strings.Join(strings.Fields(errs), " "), bad) {
			t.Errorf("%s: want a warning: %s\n%s%s", cmd, bad, out, errs)
		}
	}
}
