package stages

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/png"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"pipeline/pipeline"
)

// Summary is what a run produced, read back from its run folder: one row per trained model,
// the selection, and the run's stages.
type Summary struct {
	Run  *pipeline.RunRecord
	Dir  string
	Rows []SummaryRow
	// Winners are the folders of the models the select stages ranked first.
	Winners map[string]bool
	// Decision is the promotion note: of each select stage, in address order, named by its
	// address when the run has several.
	Decision string
}

// SummaryRow is one architecture's line of the summary.
type SummaryRow struct {
	Name   string
	Train  *Metrics
	Test   *Evaluation
	Winner bool
	// ImagesPerS is the training's speed when it trained in this run (its stats), else 0.
	ImagesPerS metric
}

// Summarize reads a run folder written by a run of the default stage kinds. Folders without
// training metrics are ignored.
func Summarize(rec *pipeline.RunRecord) *Summary {
	s := &Summary{Run: rec, Dir: rec.Dir(), Winners: map[string]bool{}}
	entries, _ := os.ReadDir(rec.Dir())
	for _, e := range entries {
		dir := filepath.Join(rec.Dir(), e.Name())
		var m Metrics
		if !readJSONFileIfExists(filepath.Join(dir, "metrics.json"), &m) {
			continue
		}
		row := SummaryRow{Name: e.Name(), Train: &m}
		for _, st := range rec.Stages {
			if v, ok := st.Stats[StatTrainImagesPerS]; ok && st.Artifacts == e.Name() {
				row.ImagesPerS = metric(v)
			}
		}
		var ev Evaluation
		if readJSONFileIfExists(filepath.Join(dir, "evaluation", "metrics.json"), &ev) {
			row.Test = &ev
		}
		s.Rows = append(s.Rows, row)
	}
	sort.Slice(s.Rows, func(i, j int) bool { return s.Rows[i].Name < s.Rows[j].Name })
	// Every select stage's, in address order: rec.Stages is in the order they finished, and
	// the note of one of two would hide the other's promotion, whichever ended last.
	var selects []*pipeline.StageResult
	for _, st := range rec.Stages {
		if st.Effect != "" && st.Artifacts != "" {
			selects = append(selects, st)
		}
	}
	sort.Slice(selects, func(i, j int) bool { return selects[i].Addr < selects[j].Addr })
	var notes []string
	for _, st := range selects {
		var dec Decision
		if readJSONFileIfExists(filepath.Join(rec.Dir(), st.Artifacts, "decision", "decision.json"), &dec) {
			notes = append(notes, st.Addr+": "+st.Effect)
			// The ranking's winner, whether or not a gate let it be promoted: the decision's
			// note, printed below the table, says what became of it.
			for _, c := range dec.Ranking[:min(1, len(dec.Ranking))] {
				// The folder of the training whose output the winner's model is (candidates
				// may be named otherwise than the trainings), else the folder its name gives.
				winner := archDir(c.Arch, c.Name)
				for _, t := range rec.Stages {
					if t.Output != "" && t.Artifacts != "" && strings.Contains(filepath.ToSlash(c.Model), "/"+t.Output) {
						winner = t.Artifacts
					}
				}
				s.Winners[winner] = true
			}
		}
	}
	if len(notes) == 1 {
		_, notes[0], _ = strings.Cut(notes[0], ": ")
	}
	s.Decision = strings.Join(notes, "; ")
	for i := range s.Rows {
		s.Rows[i].Winner = s.Winners[s.Rows[i].Name]
	}
	return s
}

// Speed is the training's images per second, "–" when it did not train in this run (cached).
func (r SummaryRow) Speed() string {
	if r.ImagesPerS <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(r.ImagesPerS))
}

func fmtMetric(m metric) string {
	if math.IsNaN(float64(m)) {
		return "–"
	}
	return fmt.Sprintf("%.3f", float64(m))
}

// WriteTable prints architecture × key metrics, the selection's winner (best by its metric,
// promoted or not) marked with *.
func (s *Summary) WriteTable(w io.Writer) {
	if len(s.Rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tmodel\tval F1\ttest top-1\ttest top-3\ttest top-5\ttest F1 macro\ttest F1 weighted\tbest epoch\tparams\ttrain img/s\t")
	for _, r := range s.Rows {
		mark := " "
		if r.Winner {
			mark = "*"
		}
		t1, t3, t5, f1m, f1w := "–", "–", "–", "–", "–"
		if r.Test != nil {
			t1, t3, t5 = fmtMetric(r.Test.TestTop1), fmtMetric(r.Test.TestTop3), fmtMetric(r.Test.TestTop5)
			f1m, f1w = fmtMetric(r.Test.TestF1Macro), fmtMetric(r.Test.TestF1Weighted)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t\n", mark, r.Name, fmtMetric(r.Train.ValF1), t1, t3, t5, f1m, f1w,
			r.Train.BestEpoch, r.Train.EpochsRun, thousands(r.Train.Params), r.Speed())
	}
	tw.Flush()
	if s.Decision != "" {
		fmt.Fprintf(w, "selection: %s\n", s.Decision)
	}
}

// fileURL is the relative URL of the file at the slash path rel: a folder named after a
// for_each key may hold "#", "?" or a ":" that would read as a scheme.
func fileURL(rel string) template.URL {
	return template.URL((&url.URL{Path: rel}).String())
}

// embedPNG returns the PNG at path as a data URL, and whether it is wider than wideImage
// pixels ("" and false when it cannot be read).
func embedPNG(path string) (template.URL, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b)), err == nil && cfg.Width > wideImage
}

// wideImage is the widest plot the report shrinks to the page's width: a wider one (the
// confusion matrix or class distribution of a few dozen classes) is shown at its own size,
// scrolled sideways, as shrunk its labels could not be read.
const wideImage = 1600

// WriteHTML writes report.html into the run folder: self-contained (plots embedded), no
// network resources.
func (s *Summary) WriteHTML() (string, error) {
	type rowView struct {
		SummaryRow
		Metrics, Confusion template.URL
		// MetricsWide and ConfusionWide are set for plots shown at their own size (wideImage).
		MetricsWide, ConfusionWide bool
		// MetricsFile and ConfusionFile are the plots' files, relative to the report, which
		// a click opens at full size (a browser does not open an embedded image's data URL).
		MetricsFile, ConfusionFile template.URL
		PerClass                   []ClassScore
	}
	var rows []rowView
	for _, r := range s.Rows {
		v := rowView{SummaryRow: r, MetricsFile: fileURL(r.Name + "/metrics.png"), ConfusionFile: fileURL(r.Name + "/evaluation/confusion_matrix.png")}
		v.Metrics, v.MetricsWide = embedPNG(filepath.Join(s.Dir, r.Name, "metrics.png"))
		v.Confusion, v.ConfusionWide = embedPNG(filepath.Join(s.Dir, r.Name, "evaluation", "confusion_matrix.png"))
		if r.Test != nil {
			v.PerClass = r.Test.PerClass
		}
		rows = append(rows, v)
	}
	// A section per data stage: what a split found, and the class distribution plot.
	var data []dataFindings
	for _, st := range s.Run.Stages {
		if st.Artifacts == "" {
			continue
		}
		dir := filepath.Join(s.Dir, st.Artifacts, "report")
		f, ok := splitFindings(st.Addr, dir)
		if !ok {
			f, _ = augmentFindings(st.Addr, dir)
		}
		if _, err := os.Stat(filepath.Join(dir, "class_distribution.png")); err == nil {
			f.Stage = st.Addr
			f.Plot, f.PlotWide = embedPNG(filepath.Join(dir, "class_distribution.png"))
			f.PlotFile = fileURL(filepath.ToSlash(filepath.Join(st.Artifacts, "report", "class_distribution.png")))
		}
		if f.Stage != "" {
			data = append(data, f)
		}
	}
	// Whole or not at all (a full disk, a kill): never a report cut off midway.
	path := filepath.Join(s.Dir, "report.html")
	var page bytes.Buffer
	if err := reportTemplate.Execute(&page, map[string]any{"S": s, "Rows": rows, "Data": data, "Stages": s.Run.Stages}); err != nil {
		return path, err
	}
	return path, pipeline.WriteFileAtomic(path, page.Bytes())
}

// dataFindings is a data stage's section of the report: what a split found in its photos,
// and the class distribution plot.
type dataFindings struct {
	Stage string
	// PlotFile is the class distribution plot's file, relative to the report (Plot embeds it).
	PlotFile template.URL
	Split    bool     // a split's section (else an augmentation's)
	Counts   string   // the images per split, or before and after augmentation
	Notes    []string // the problems it found, each with the file that lists them
	Rejected []Rejected
	// Conflicts are the groups of identical or near-identical files in different classes.
	Conflicts []string
	// RejectedMore and ConflictsMore count those left out of the page (reportListMax each):
	// a folder of photos with an editor's sidecar file beside each would otherwise list them
	// all, tens of thousands of rows, in every run's report.
	RejectedMore, ConflictsMore int
	Plot                        template.URL
	PlotWide                    bool // shown at its own size (wideImage)
}

// reportListMax is how many rejected files, and groups of images in different classes, the
// report lists; the report's files (rejected.json, split.json) list them all.
const reportListMax = 200

// augmentFindings reads an augmentation's report folder (augment.json); false when dir is
// not one.
func augmentFindings(stage, dir string) (dataFindings, bool) {
	var r augmentReport
	if !readJSONFileIfExists(filepath.Join(dir, "augment.json"), &r) {
		return dataFindings{}, false
	}
	before, after, grown := 0, 0, 0
	for _, c := range r.Classes {
		before, after = before+c.Before, after+c.After
		if c.After > c.Before {
			grown++
		}
	}
	return dataFindings{Stage: stage, Counts: fmt.Sprintf("%d training images, %d after augmentation: %d copies, in %d of %d classes",
		before, after, after-before, grown, len(r.Classes))}, true
}

// rejectedWhat names what a split rejected, counted in its split.json: "rejected files",
// "rejected files and folders" or "rejected folders", as rejected lists them.
func rejectedWhat(rejected []Rejected) string {
	switch folders := rejectedFolders(rejected); {
	case folders == 0:
		return "rejected files"
	case folders == len(rejected):
		return "rejected folders"
	}
	return "rejected files and folders"
}

// splitFindings reads a split's report folder (split.json, rejected.json); false when dir
// is not one.
func splitFindings(stage, dir string) (dataFindings, bool) {
	var r splitReport
	if !readJSONFileIfExists(filepath.Join(dir, "split.json"), &r) {
		return dataFindings{}, false
	}
	f := dataFindings{Stage: stage, Split: true, Counts: fmt.Sprintf("%s in %s: train %d, val %d, test %d",
		plural(r.Total.Total, "image", "images"), plural(len(r.Classes), "class", "classes"), r.Total.Train, r.Total.Val, r.Total.Test)}
	note := func(n int, what, where string) {
		if n > 0 {
			f.Notes = append(f.Notes, fmt.Sprintf("%s: %d (%s)", what, n, where))
		}
	}
	readJSONFileIfExists(filepath.Join(dir, "rejected.json"), &f.Rejected)
	note(r.Rejected, rejectedWhat(f.Rejected), "report/rejected.json")
	note(len(r.Conflicts), "groups of identical images in different classes", "split.json: label_conflicts")
	note(len(r.NearConflicts), "groups of near-identical images in different classes", "split.json: near_duplicate_label_conflicts")
	note(len(r.Duplicates), "groups of identical images", "split.json: duplicates")
	note(len(r.Leaked), "images removed from train and val as they are in the test set", "split.json: removed_from_train_val")
	note(len(r.Damaged), "JPEGs with damaged data, kept as libjpeg-turbo decoded them", "split.json: damaged_jpegs")
	if len(r.Dropped) > 0 {
		f.Notes = append(f.Notes, droppedNote(r))
	}
	if len(f.Rejected) > reportListMax {
		f.Rejected, f.RejectedMore = f.Rejected[:reportListMax], len(f.Rejected)-reportListMax
	}
	for _, g := range append(append([][]string{}, r.Conflicts...), r.NearConflicts...) {
		if len(f.Conflicts) == reportListMax {
			f.ConflictsMore++
			continue
		}
		f.Conflicts = append(f.Conflicts, strings.Join(g, " · "))
	}
	return f, true
}

// droppedNote is the report's line on the classes a split dropped, each with its usable
// images when split.json has them (dropped_class_images): "2 classes dropped for too few
// images (split.json: dropped_classes): c1 (2 usable), c2 (1)".
func droppedNote(r splitReport) string {
	parts := make([]string, len(r.Dropped))
	unit := " usable"
	for i, c := range r.Dropped {
		parts[i] = c
		if n, ok := r.DroppedImages[c]; ok {
			parts[i] += fmt.Sprintf(" (%d%s)", n, unit)
			unit = ""
		}
	}
	return fmt.Sprintf("%s dropped for too few images (split.json: dropped_classes): %s",
		plural(len(r.Dropped), "class", "classes"), strings.Join(parts, ", "))
}

// drop records that the split leaves class out, with its usable images (identical and
// near-identical files counting once).
func (r *splitReport) drop(class string, usable int) {
	r.Dropped = append(r.Dropped, class)
	if r.DroppedImages == nil {
		r.DroppedImages = map[string]int{}
	}
	r.DroppedImages[class] = usable
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"f":    fmtMetric,
	"pct":  func(x float64) string { return fmt.Sprintf("%.3f", x) },
	"join": strings.Join,
	"dur":  func(s float64) string { return fmt.Sprintf("%.1f s", s) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Run {{.S.Run.ID}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr.win{background:#eaf6ea;font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.plot{overflow-x:auto}.plot.wide img{max-width:none}.muted{color:#777}details{margin:.5em 0}
</style></head><body>
<h1>Run {{.S.Run.ID}} <span class="muted">({{.S.Run.Status}})</span></h1>
<p class="muted">{{if .S.Run.Trigger}}{{.S.Run.Trigger}} · {{end}}{{.S.Run.Pipeline}} · seed {{.S.Run.Seed}} · {{range $k, $v := .S.Run.Versions}}{{$k}} {{$v}} · {{end}}all rates are fractions 0–1</p>
{{if .S.Decision}}<p><b>Selection:</b> {{.S.Decision}}</p>{{end}}
<h2>Models</h2>
{{if not .Rows}}<p class="muted">No model was trained or evaluated in this run.</p>{{else}}
<table><tr><th>model</th><th>val F1</th><th>test top-1</th><th>test top-3</th><th>test top-5</th><th>test F1 macro</th><th>test F1 weighted</th><th>best epoch</th><th>params</th><th>train img/s</th></tr>
{{range .Rows}}<tr{{if .Winner}} class="win"{{end}}><td>{{.Name}}{{if .Winner}} ★{{end}}</td><td>{{f .Train.ValF1}}</td>
{{if .Test}}<td>{{f .Test.TestTop1}}</td><td>{{f .Test.TestTop3}}</td><td>{{f .Test.TestTop5}}</td><td>{{f .Test.TestF1Macro}}</td><td>{{f .Test.TestF1Weighted}}</td>{{else}}<td colspan="5">not evaluated</td>{{end}}
<td>{{.Train.BestEpoch}}/{{.Train.EpochsRun}}</td><td>{{.Train.Params}}</td><td>{{.Speed}}</td></tr>{{end}}
</table>{{end}}
{{range .Rows}}<h3>{{.Name}}</h3><p class="muted">{{.Train.Selection}}</p>
{{if and .Test .Test.SeenInTraining}}<p><b>Warning:</b> {{.Name}} was trained on {{.Test.SeenInTraining}} of its {{.Test.Images}} test images (or the model it started from was): its test scores flatter it.</p>{{end}}
{{if .Metrics}}<div class="plot{{if .MetricsWide}} wide{{end}}"><a href="{{.MetricsFile}}"><img alt="{{.Name}} training curves" src="{{.Metrics}}"></a></div>{{end}}
{{if .Confusion}}<div class="plot{{if .ConfusionWide}} wide{{end}}"><a href="{{.ConfusionFile}}"><img alt="{{.Name}} confusion matrix" src="{{.Confusion}}"></a></div>{{end}}
{{if .PerClass}}<details><summary>Per-class scores</summary><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>
{{range .PerClass}}<tr><td>{{.Class}}</td><td>{{pct .Precision}}</td><td>{{pct .Recall}}</td><td>{{pct .F1}}</td><td>{{.Support}}</td></tr>{{end}}</table></details>{{end}}
{{end}}
{{if .Data}}<h2>Data</h2>{{end}}
{{range .Data}}<h3>{{.Stage}}</h3>{{if .Counts}}<p>{{.Counts}}.</p>{{if .Notes}}<ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{else if .Split}}<p class="muted">No rejected files, duplicates or dropped classes.</p>{{end}}{{end}}
{{if .Rejected}}<details><summary>Rejected files</summary><table><tr><th>file</th><th>class</th><th>reason</th></tr>
{{range .Rejected}}<tr><td>{{.Path}}</td><td>{{.Class}}</td><td style="text-align:left">{{.Reason}}</td></tr>{{end}}</table>{{if .RejectedMore}}<p class="muted">… and {{.RejectedMore}} more in report/rejected.json</p>{{end}}</details>{{end}}
{{if .Conflicts}}<details><summary>Same picture in different classes</summary><ul>{{range .Conflicts}}<li>{{.}}</li>{{end}}</ul>{{if .ConflictsMore}}<p class="muted">… and {{.ConflictsMore}} more in split.json</p>{{end}}</details>{{end}}
{{if .Plot}}<div class="plot{{if .PlotWide}} wide{{end}}"><a href="{{.PlotFile}}"><img alt="{{.Stage}} class distribution" src="{{.Plot}}"></a></div>{{end}}{{end}}
<h2>Stages</h2>
<table><tr><th>stage</th><th>status</th><th>duration</th><th>why</th></tr>
{{range .Stages}}<tr><td>{{.Addr}}</td><td>{{.Status}}</td><td>{{dur .Duration}}</td><td style="text-align:left">{{join .Reasons "; "}}{{if .Error}} — {{.Error}}{{end}}{{if .Effect}} — {{.Effect}}{{end}}</td></tr>{{end}}
</table></body></html>
`))

// thousands writes n with a comma between groups of three digits (1,147,114).
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
