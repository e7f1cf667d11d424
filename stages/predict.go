package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/pipeline/regular"
)

// Predictor serves predictions of an exported model on image files: it decodes any supported
// format, fits the image to the model's input the way training data was fitted, and returns
// the top classes. It is safe for concurrent use.
type Predictor struct {
	Model *graphs.Model
	Dir   string // the SavedModel folder
	Card  *Card  // set when loaded from a promotion folder
}

// Prediction is one class with its probability.
type Prediction struct {
	ClassID    int     `json:"class_id"`
	ClassName  string  `json:"class_name"`
	Confidence float64 `json:"confidence"`
}

// Input errors a server maps to status codes. The errors CheckImage and PredictBytes return
// for a bad file wrap one of them (errors.Is) and say what is wrong in the words of the
// split's rejected.json for the same file ("truncated jpeg", "empty file", "not an image
// (…)", "unsupported bmp (RLE8 compression): convert it to PNG or JPEG").
var (
	ErrNotImage = errors.New("not an image: " + ImageFormats + " expected")
	// ErrUnsupportedFormat is a photo in a format the decoders do not read at all (HEIC,
	// AVIF, SVG, ICO): not an image to them (errors.Is ErrNotImage: a server's 415), with a
	// reason saying what it is and what to do.
	ErrUnsupportedFormat = fmt.Errorf("%w (a format pipeline does not read)", ErrNotImage)
	ErrBadImage          = errors.New("the image could not be decoded")
	// ErrUnsupportedFeature is a valid file of a format the decoders read, with a feature they
	// lack (an RLE-compressed BMP, a JPEG-compressed TIFF): an image they cannot decode
	// (errors.Is ErrBadImage), but unsupported, as ErrUnsupportedFormat is (a server's 415).
	ErrUnsupportedFeature = fmt.Errorf("%w (a feature pipeline's decoders lack)", ErrBadImage)
	ErrTooLarge           = errors.New("the image has too many pixels")
	ErrEmptyFile          = errors.New("empty file")
)

// LoadPredictor loads a model folder: a SavedModel written by train, or a promotion folder
// (models/final_models) holding saved_model/ and a model.json card.
func LoadPredictor(dir string, threads int) (*Predictor, error) {
	p := &Predictor{Dir: dir}
	if saved, ok := PromotedSavedModel(dir); ok {
		p.Dir = saved
		if card, err := ReadCard(dir); err == nil {
			p.Card = card
		}
	} else if filepath.Base(filepath.Clean(dir)) == "saved_model" {
		// The SavedModel of a promoted folder given itself (models/final_models/saved_model,
		// as the README's Python example loads it): the folder's card still names the model.
		if card, err := ReadCard(filepath.Dir(filepath.Clean(dir))); err == nil && card.ID != "" {
			p.Card = card
		}
	}
	m, err := graphs.LoadModel(p.Dir, threads)
	if err != nil {
		fi, serr := os.Stat(dir)
		if serr != nil {
			return nil, fmt.Errorf("no model at %s: %w", dir, WithoutPath(serr))
		}
		if !fi.IsDir() {
			// A file of a model (model.json, saved_model.pb) given for the model: the folder
			// it is in is suggested only when it holds a model.
			in := filepath.Dir(filepath.Clean(dir))
			if !HoldsModel(in) {
				return nil, fmt.Errorf("%s is a file: a model is a folder, and %s, the folder it is in, holds none exported by pipeline", dir, in)
			}
			return nil, fmt.Errorf("%s is a file: a model is a folder; give the folder it is in, %s", dir, in)
		}
		// A run folder holds a model per folder (cnn/saved_model): name them.
		models := modelFolders(dir)
		for i, m := range models {
			models[i] = filepath.Join(dir, m)
		}
		if len(models) > 0 {
			return nil, &ModelsFolderError{Dir: dir, Models: models}
		}
		return nil, err
	}
	p.Model = m
	return p, nil
}

// ModelsFolderError is LoadPredictor's error for a folder that holds no model itself but a
// model per folder (a run folder: cnn/saved_model, vit/saved_model).
type ModelsFolderError struct {
	Dir    string   // the folder given
	Models []string // the model folders' paths
}

func (e *ModelsFolderError) Error() string {
	if len(e.Models) == 1 {
		return fmt.Sprintf("%s holds no model itself but one in a folder: give %s", e.Dir, e.Models[0])
	}
	return fmt.Sprintf("%s holds no model itself but %d, one per folder: give one of %s", e.Dir, len(e.Models), pipeline.JoinList(e.Models, "or"))
}

// Close releases the model.
func (p *Predictor) Close() error { return p.Model.Close() }

// Classes returns the class names in index order.
func (p *Predictor) Classes() []string { return p.Model.Info.Classes }

// CheckImage reads an image header and reports the format, or an input error, without
// decoding pixels: what a server does before spending memory on a file.
func CheckImage(data []byte, maxPixels int64) (string, error) {
	_, format, err := checkImage(data, maxPixels)
	return format, err
}

// checkImage is CheckImage, also returning the header, with the split's checks (checkHeader);
// the limit is named as predict's and serve's flag.
func checkImage(data []byte, maxPixels int64) (image.Config, string, error) {
	if len(data) == 0 {
		return image.Config{}, "", emptyFile()
	}
	head := func() []byte { return data[:min(len(data), headLen)] }
	return checkHeader(bytes.NewReader(data), head, maxPixels, "--max-pixels")
}

// PredictBytes returns the top k predictions for each encoded image (errors per image), and
// for each JPEG that libjpeg-turbo decoded past damage in, what it said ("Corrupt JPEG data:
// …"; "" for the others).
func (p *Predictor) PredictBytes(images [][]byte, k int, maxPixels int64) (preds [][]Prediction, damaged []string, errs []error) {
	info := p.Model.Info
	size, ch := int(info.Input.Height), int(info.Input.Channels)
	per := size * size * ch
	results := make([][]Prediction, len(images))
	damaged = make([]string, len(images))
	errs = make([]error, len(images))
	var batch []float32
	var idx []int
	for i, data := range images {
		cfg, format, err := checkImage(data, maxPixels)
		if err != nil {
			errs[i] = err
			continue
		}
		img, note, err := prepare(data, format, cfg.Width, cfg.Height, size, resizeOf(info), ch)
		if err != nil {
			errs[i] = decodeError(format, err, data)
			continue
		}
		if !note.fallback {
			damaged[i] = note.libjpeg
		}
		px := pixelsOf(img, ch)
		for _, v := range px {
			batch = append(batch, float32(v))
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return results, damaged, errs
	}
	probs, err := p.Model.Predict(batch[:len(idx)*per])
	if err != nil {
		for _, i := range idx {
			errs[i] = err
		}
		return results, damaged, errs
	}
	for j, i := range idx {
		if slices.ContainsFunc(probs[j], func(v float32) bool { return v != v }) {
			errs[i] = p.divergedError()
			continue
		}
		results[i] = topPredictions(probs[j], info.Classes, k)
	}
	return results, damaged, errs
}

// divergedError is PredictBytes' error for an image the model answered NaN for: its training
// diverged. A promoted model (the champion) can be rolled back to an earlier one; a run's
// model can only be trained again.
func (p *Predictor) divergedError() error {
	if p.Card != nil && p.Card.ID != "" {
		return errors.New("the model's output is not a number (NaN): it diverged in training; roll back to an earlier champion or retrain")
	}
	return errors.New("the model's output is not a number (NaN): it diverged in training; retrain it, with a lower learning_rate for instance")
}

func resizeOf(info graphs.ModelInfo) string {
	if info.Resize == "" {
		return ResizeCenterCrop
	}
	return info.Resize
}

// topPredictions returns the k most probable classes, most probable first (none for k below 1).
func topPredictions(p []float32, classes []string, k int) []Prediction {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	k = max(0, min(k, len(idx)))
	out := make([]Prediction, k)
	for j, i := range idx[:k] {
		out[j] = Prediction{ClassID: i, ClassName: classes[i], Confidence: float64(p[i])}
	}
	return out
}

// Example opens the reference image of a class (from the training set), with its extension;
// one that is not a regular file (a named pipe, which would block, a device) is not opened
// (a *regular.Error).
func (p *Predictor) Example(classID int) (*os.File, string, error) {
	// Not filepath.Glob, which finds nothing when the model's path holds '[' or '*'.
	dir := filepath.Join(p.Dir, "examples")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if stem, ext, ok := strings.Cut(e.Name(), "."); ok && stem == fmt.Sprint(classID) {
			f, _, err := regular.Open(filepath.Join(dir, e.Name()))
			return f, "." + strings.ToLower(ext), err
		}
	}
	return nil, "", os.ErrNotExist
}

// CardJSON returns the model's card (promotion metadata) or, for a plain model folder, its
// model.json.
func (p *Predictor) CardJSON() ([]byte, error) {
	if p.Card != nil {
		return json.MarshalIndent(p.Card, "", "  ")
	}
	return json.MarshalIndent(p.Model.Info, "", "  ")
}
