package stages

import (
	"slices"
	"sort"
	"strings"
	"sync"

	"pipeline/pipeline"
)

// DamagedJPEG is a JPEG that libjpeg-turbo decoded past damage in its coded data, and what it
// said of it (its first warning, such as "Corrupt JPEG data: premature end of data segment").
// The file is kept, as decoded: the damage can be harmless (stray bytes before its end) or
// show as grey or smeared blocks from the damaged part on.
type DamagedJPEG struct {
	Path    string `json:"path"`
	Digest  string `json:"digest,omitempty"`
	Libjpeg string `json:"libjpeg"`
}

// harmlessLibjpeg begin what libjpeg-turbo says of a JPEG that is no damage to its pixels: a
// JFIF version it does not know, an Adobe colour transform code it does not know (it then
// follows the file's component ids), more scanlines asked for than the image has.
var harmlessLibjpeg = []string{"Warning: unknown JFIF revision number", "Unknown Adobe color transform code", "Application transferred too many scanlines"}

// damageSaid is what libjpeg-turbo said, one line a message, of damage in a JPEG it decoded,
// its messages joined with "; ", and those about no damage (harmlessLibjpeg) left out.
func damageSaid(said string) string {
	var damage []string
	for _, line := range strings.Split(said, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !slices.ContainsFunc(harmlessLibjpeg, func(h string) bool { return strings.HasPrefix(line, h) }) {
			damage = append(damage, line)
		}
	}
	return strings.Join(damage, "; ")
}

// DamagedWarning is in every warning of damaged JPEGs (logDamaged): each stage that decodes the
// same photos warns alike, which the console shows once.
const DamagedWarning = "damaged data that libjpeg-turbo decoded past"

// damagedJPEGs collects the damaged JPEGs a stage decodes, once each, from any goroutine.
type damagedJPEGs struct {
	mu   sync.Mutex
	seen map[string]bool
	list []DamagedJPEG
}

// add records a file decoded with libjpeg's warning said ("" for a clean decode: nothing).
func (d *damagedJPEGs) add(path, digest, said string) {
	if said == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[path] {
		return
	}
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	d.seen[path] = true
	d.list = append(d.list, DamagedJPEG{Path: path, Digest: digest, Libjpeg: said})
}

// merge adds o's files to d.
func (d *damagedJPEGs) merge(o *damagedJPEGs) {
	for _, f := range o.sorted() {
		d.add(f.Path, f.Digest, f.Libjpeg)
	}
}

// sorted returns the files by path.
func (d *damagedJPEGs) sorted() []DamagedJPEG {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]DamagedJPEG(nil), d.list...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// logDamaged warns of damaged JPEGs in job's log: a line for the console that names the first
// (of says which of the stage's images they are: "" or " of the test set"), then each file
// with what libjpeg-turbo said. listed names a report that lists them all (" (all in
// report/split.json: damaged_jpegs)"): the log then names the first five and counts the rest.
func logDamaged(job *pipeline.Job, damaged []DamagedJPEG, of, listed string) {
	if len(damaged) == 0 {
		return
	}
	eg := "e.g. "
	if len(damaged) == 1 {
		eg = ""
	}
	where := listed
	if where == "" {
		where = " (all in run.log)"
	}
	job.Logf("warning: %s%s %s %s (kept as decoded; replace any whose damage shows), %s%q: %s%s",
		plural(len(damaged), "JPEG", "JPEGs"), of, agree(len(damaged), "has", "have"), DamagedWarning, eg, damaged[0].Path, damaged[0].Libjpeg, where)
	for i, d := range damaged {
		if i == 5 && listed != "" {
			job.Logf("  … and %d more", len(damaged)-5)
			break
		}
		job.Logf("  damaged %s: %s", logName(d.Path), d.Libjpeg)
	}
}
