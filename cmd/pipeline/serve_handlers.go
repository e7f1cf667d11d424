package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"pipeline/pipeline"
	"pipeline/stages"
)

//go:embed web/index.html web/openapi.json
var webFiles embed.FS

// lowConfidence is the warning the original API gave, worded for any dataset.
const lowConfidence = "Low confidence in predictions: the model is unsure between classes, or the subject is not one of those it knows."

// lowConfidence5 says whether predictions, most likely first, call for the lowConfidence
// warning: the first five confidences sum to less than warnSum, or the first is below warnTop.
// serve and predict both use it.
func lowConfidence5(preds []stages.Prediction, warnSum, warnTop float64) bool {
	if len(preds) == 0 {
		return false
	}
	var sum float64
	for _, p := range preds[:min(5, len(preds))] {
		sum += p.Confidence
	}
	return sum < warnSum || preds[0].Confidence < warnTop
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /predict", s.handlePredict)
	mux.HandleFunc("GET /classes", s.handleClasses)
	mux.HandleFunc("GET /classes/{name}/example", s.handleExample)
	mux.HandleFunc("GET /model", s.handleModel)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /openapi.json", staticFile("web/openapi.json", "application/json"))
	mux.HandleFunc("GET /{$}", staticFile("web/index.html", "text/html; charset=utf-8"))
	return s.logRequests(recoverJSON(jsonErrors(mux)))
}

func staticFile(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := webFiles.ReadFile(name)
		w.Header().Set("Content-Type", contentType)
		w.Write(b)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs method, path, status and latency of every request.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.logger.Printf("%s %s %d %s", r.Method, r.URL.Path, sw.status, time.Since(start).Round(100*time.Microsecond))
	})
}

// recoverJSON turns a panic in a handler into a JSON 500, never a stack trace to the client.
func recoverJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", p))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// jsonErrors turns the errors net/http answers in plain text into the API's JSON error: the
// mux's 404 for an unknown path and 405 for a known path with another method (its Allow
// header kept), and http.ServeContent's range and precondition failures on example images.
// Responses that are already JSON pass through.
func jsonErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jw := &jsonErrorWriter{ResponseWriter: w}
		next.ServeHTTP(jw, r)
		if jw.status == 0 {
			return
		}
		msg := strings.TrimSpace(jw.body.String())
		switch jw.status {
		case http.StatusNotFound:
			msg = fmt.Sprintf("nothing at %s; GET /openapi.json describes the API", r.URL.Path)
		case http.StatusMethodNotAllowed:
			msg = fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, w.Header().Get("Allow"))
		}
		if msg == "" {
			msg = http.StatusText(jw.status)
		}
		w.Header().Del("Content-Length")
		w.Header().Del("X-Content-Type-Options")
		writeError(w, jw.status, msg)
	})
}

// jsonErrorWriter holds back an error response that is not JSON (status 400 or above
// without an application/json Content-Type), keeping its text for jsonErrors to rewrite.
type jsonErrorWriter struct {
	http.ResponseWriter
	wroteHeader bool
	status      int          // the held-back error status, 0 when none
	body        bytes.Buffer // its text, up to 1 KB
}

func (w *jsonErrorWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.status != 0 {
		w.body.Write(b[:min(len(b), max(0, 1024-w.body.Len()))])
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *jsonErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSONResponse(w, status, map[string]string{"error": msg})
}

// predictResponse is the body of a successful /predict.
type predictResponse struct {
	Predictions []stages.Prediction `json:"predictions"`
	Warning     string              `json:"warning,omitempty"`
	// Damaged is what libjpeg-turbo said of damage in the JPEG's coded data that it decoded
	// past ("Corrupt JPEG data: …"): the image was classified as decoded.
	Damaged string `json:"damaged,omitempty"`
	Model   string `json:"model"`
}

func (s *server) handlePredict(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "send the image as multipart/form-data in a field named image")
		return
	}
	k := s.opts.TopK
	if q := r.URL.Query(); q.Has("top") {
		if tops := q["top"]; len(tops) > 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("top=%s: top is given %d times; give it once, the number of classes to answer", strings.Join(tops, "&top="), len(tops)))
			return
		}
		if k, err = strconv.Atoi(q.Get("top")); err != nil || k < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("top=%s: the number of classes to answer must be a whole number, 1 or more", q.Get("top")))
			return
		}
	}
	// A body whose declared length is over the limit is refused before any of it is read:
	// a client that asked to continue (Expect: 100-continue, as curl does past 1 MB) sends
	// nothing more, where it was told to send the whole upload, 10 MiB of it read, for a 413.
	if r.ContentLength > s.opts.MaxBody {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, s.opts.tooLarge())
		return
	}
	// Admission first: a bounded queue in front of a bounded number of inferences, checked
	// before the upload is read, so that memory is bounded by the queue, not by the clients.
	select {
	case s.queue <- struct{}{}:
		defer func() { <-s.queue }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy: too many requests waiting; retry shortly")
		return
	}
	rc, start := http.NewResponseController(w), time.Now()
	paced := &pacedBody{ReadCloser: r.Body, rc: rc, start: start, opts: s.opts}
	r.Body = http.MaxBytesReader(w, paced, s.opts.MaxBody)
	data, status, msg := readImageField(r, s.opts.tooLarge(), s.opts.tooSlow())
	if status != 0 && paced.late {
		// whatever the multipart reader made of a body cut short ("malformed MIME header")
		status, msg = http.StatusRequestTimeout, s.opts.tooSlow()
	}
	if status != 0 {
		// Not waiting for the rest of a refused upload, which a stalled one would never send.
		w.Header().Set("Connection", "close")
		writeError(w, status, msg)
		return
	}
	// The upload is in; what the client may still send (the rest of a declared length,
	// which net/http reads to keep the connection) stays bounded.
	_ = rc.SetReadDeadline(start.Add(s.opts.UploadLimit))
	if _, err := stages.CheckImage(data, s.opts.MaxPixels); err != nil {
		switch {
		case errors.Is(err, stages.ErrNotImage) || errors.Is(err, stages.ErrUnsupportedFeature):
			writeError(w, http.StatusUnsupportedMediaType, err.Error())
		case errors.Is(err, stages.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		default:
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	timer := time.NewTimer(s.opts.Wait)
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-timer.C:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy: no inference slot within the time limit; retry shortly")
		return
	case <-r.Context().Done():
		// The client is gone (no answer reaches it): logged as nginx logs it, not as the
		// 200 net/http would record for a handler that wrote nothing.
		writeError(w, statusClientClosed, "the client closed the request while it waited for an inference slot")
		return
	}
	m := s.acquire()
	if m == nil {
		writeError(w, http.StatusServiceUnavailable, "no model loaded yet")
		return
	}
	defer m.inflight.Done()
	// The warning looks at the top five whatever top answers, as predict's does.
	preds, damaged, errs := m.p.PredictBytes([][]byte{data}, max(k, 5), s.opts.MaxPixels)
	if errs[0] != nil {
		if errors.Is(errs[0], stages.ErrUnsupportedFeature) { // found decoding, not in the header
			writeError(w, http.StatusUnsupportedMediaType, errs[0].Error())
			return
		}
		if errors.Is(errs[0], stages.ErrBadImage) {
			writeError(w, http.StatusBadRequest, errs[0].Error())
			return
		}
		writeError(w, http.StatusInternalServerError, "inference failed: "+errs[0].Error())
		return
	}
	resp := predictResponse{Predictions: preds[0][:min(k, len(preds[0]))], Model: m.name, Damaged: damaged[0]}
	if lowConfidence5(preds[0], s.opts.WarnSum, s.opts.WarnTop) {
		resp.Warning = lowConfidence
	}
	writeJSONResponse(w, http.StatusOK, resp)
}

// statusClientClosed is the status logged for a request whose client went away before it
// was answered: nginx's 499, as a proxy in front of the server logs the same request.
const statusClientClosed = 499

// pacedBody is the body of an admitted upload, which must keep arriving: each read may wait
// until the upload has had UploadGrace plus a second per UploadRate bytes received, and never
// beyond UploadLimit. A client trickling bytes would otherwise hold its place in the queue,
// and enough of them would turn every other client away. (A server that cannot set read
// deadlines, as in tests, reads without them.)
type pacedBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	n     int64
	opts  serveOptions
	late  bool // a read missed its deadline
}

// tooSlow is the error for an upload that missed its deadline.
func (o serveOptions) tooSlow() string {
	return fmt.Sprintf("the upload arrived too slowly: after its first %s it must keep up %s a second on average, and be in within %s",
		seconds(o.UploadGrace), sizeText(o.UploadRate), seconds(o.UploadLimit))
}

// tooLarge is the error for a request over MaxBody, named as the flag that sets it, as an
// image over MaxPixels is ("png of 9000x9000 exceeds --max-pixels 50000000").
func (o serveOptions) tooLarge() string {
	return "request exceeds --max-body " + sizeText(o.MaxBody)
}

// sizeText says n bytes as the README does: "10 MiB", "16 KiB", "1500 bytes" when not a
// whole number of either.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n == 1:
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if p.opts.UploadRate > 0 {
		due := p.opts.UploadGrace + time.Duration(float64(p.n)/float64(p.opts.UploadRate)*float64(time.Second))
		_ = p.rc.SetReadDeadline(p.start.Add(min(due, p.opts.UploadLimit)))
	}
	n, err := p.ReadCloser.Read(b)
	p.n += int64(n)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.late = true
	}
	return n, err
}

// readImageField streams a multipart body, which r.Body limits (--max-body), and reads its
// part named "image" into memory; other parts are skipped without being kept. A second
// "image" part is refused rather than silently ignored: the answer would be about one of two
// images without saying which. On failure it returns the HTTP status and message to answer
// with (large for a body over the limit, slow for an upload that missed its read deadline).
func readImageField(r *http.Request, large, slow string) ([]byte, int, string) {
	tooLarge := func(err error) bool {
		var mbe *http.MaxBytesError
		return errors.As(err, &mbe)
	}
	_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	form := &formEnd{ReadCloser: r.Body, boundary: params["boundary"], declared: r.ContentLength, delim: []byte("\n--" + params["boundary"] + "--")}
	r.Body = form
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, http.StatusBadRequest, badMultipart(err, false)
	}
	var data []byte
	for {
		part, err := mr.NextPart()
		switch {
		case tooLarge(err):
			return nil, http.StatusRequestEntityTooLarge, large
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, http.StatusRequestTimeout, slow
		case err != nil && form.ended && form.read == 0 && form.declared <= 0:
			return nil, http.StatusBadRequest, `the body is empty; send the image as a file in the multipart/form-data field "image" (curl -F image=@photo.jpg)`
		case err != nil && form.noForm():
			return nil, http.StatusBadRequest, fmt.Sprintf(`the body holds no part of a multipart/form-data form with the boundary its Content-Type names (%q); send the image as a file in the multipart/form-data field "image" (curl -F image=@photo.jpg)`, params["boundary"])
		case err != nil && form.cutOff(): // a body cut in a part's headers ends in a plain io.EOF
			return nil, http.StatusBadRequest, badMultipart(err, true)
		case err == io.EOF && data == nil:
			return nil, http.StatusBadRequest, "no file in the form field \"image\""
		case err == io.EOF:
			return data, 0, ""
		case err != nil:
			return nil, http.StatusBadRequest, badMultipart(err, false)
		}
		if part.FormName() != "image" {
			part.Close()
			continue
		}
		if data != nil {
			part.Close()
			return nil, http.StatusBadRequest, "more than one image field: send one image per request, in the form field \"image\""
		}
		data, err = io.ReadAll(part)
		part.Close()
		switch {
		case tooLarge(err):
			return nil, http.StatusRequestEntityTooLarge, large
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, http.StatusRequestTimeout, slow
		case err != nil:
			return nil, http.StatusBadRequest, badMultipart(err, form.cutOff())
		}
		if data == nil {
			data = []byte{} // an empty file is still the one image field
		}
	}
}

// badMultipart is the message for a request body that is not the multipart/form-data its
// Content-Type says, given the multipart reader's error err and whether the body ended before
// the form's closing boundary (cutOff: the client stopped sending, or sent less than the form):
// the reader's words for a body cut off ("multipart: NextPart: EOF", "malformed MIME header"
// in a part's headers) would not say so. Other malformations keep them, after what to send.
func badMultipart(err error, cutOff bool) string {
	const send = `send the image as a file in the multipart/form-data field "image" (curl -F image=@photo.jpg)`
	switch {
	case cutOff:
		return "the upload is cut off: the body ends before its multipart/form-data form does; " + send
	case errors.Is(err, http.ErrMissingBoundary):
		return "the Content-Type multipart/form-data names no boundary; " + send
	}
	return fmt.Sprintf("the body is not valid multipart/form-data (%v); %s", err, send)
}

// formEnd follows a multipart/form-data body as it is read: whether it ended, whether it
// opened with a delimiter line of the form's boundary ("--BOUNDARY" at the start of a line,
// then the line's end), and whether the form's closing delimiter ("--BOUNDARY--" at the start
// of a line) came before its end, so that a form that fails to parse can be told cut off
// from malformed or from no form at all.
type formEnd struct {
	io.ReadCloser
	boundary string // the Content-Type's
	declared int64  // the Content-Length, -1 when not given
	delim    []byte // the closing delimiter, after its line's start
	head     []byte // the body's first bytes (up to formHead), which hold its first delimiter
	buf      []byte // the tail and the bytes last read, searched for delim
	tail     []byte // the last bytes read, one fewer than delim has: a delimiter across two reads
	read     int64  // bytes read
	closed   bool   // delim was read
	ended    bool   // the body ended
}

// formHead is how much of a body formEnd keeps to find its first delimiter in: a preamble
// before it is rare, and short.
const formHead = 8 << 10

// Read reads from the body and notes what the form's delimiters say of it.
func (f *formEnd) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if k := min(formHead-len(f.head), n); k > 0 {
		if f.read == 0 {
			f.head = append(f.head, '\n') // the body's start is a line's start
		}
		f.head = append(f.head, p[:k]...)
	}
	f.read += int64(n)
	if !f.closed && n > 0 {
		if len(f.buf) == 0 && len(f.tail) == 0 {
			f.tail = append(f.tail, '\n')
		}
		f.buf = append(append(f.buf[:0], f.tail...), p[:n]...)
		f.closed = bytes.Contains(f.buf, f.delim)
		f.tail = append(f.tail[:0], f.buf[max(0, len(f.buf)-len(f.delim)+1):]...)
	}
	// A client that closes the connection before its Content-Length is in ends it too.
	f.ended = f.ended || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)
	return n, err
}

// cutOff reports whether the body ended before the form's closing delimiter.
func (f *formEnd) cutOff() bool { return f.ended && !f.closed }

// noForm reports whether the body ended holding no delimiter line of the form's boundary
// (another boundary, or no form at all), rather than cut off before or in its first one.
func (f *formEnd) noForm() bool {
	if !f.ended || f.read == 0 {
		return false
	}
	open := []byte("\n--" + f.boundary)
	for i := 0; ; {
		j := bytes.Index(f.head[i:], open)
		if j < 0 {
			break
		}
		rest := bytes.TrimLeft(f.head[i+j+len(open):], " \t")
		if bytes.HasPrefix(rest, []byte("\r\n")) || bytes.HasPrefix(rest, []byte("\n")) || len(rest) == 0 {
			return false // a delimiter line (or the body cut off right after one)
		}
		i += j + 1
	}
	// Cut off in its first delimiter: the body's last line is the start of one.
	if f.read < formHead {
		last := f.head[bytes.LastIndexByte(f.head, '\n')+1:]
		if len(last) > 0 && bytes.HasPrefix(open[1:], bytes.TrimRight(last, "\r")) {
			return false
		}
	}
	return true
}

func (s *server) handleClasses(w http.ResponseWriter, r *http.Request) {
	m := s.acquire()
	if m == nil {
		writeError(w, http.StatusServiceUnavailable, "no model loaded yet")
		return
	}
	defer m.inflight.Done()
	writeJSONResponse(w, http.StatusOK, map[string]any{"classes": m.p.Classes()})
}

func (s *server) handleExample(w http.ResponseWriter, r *http.Request) {
	m := s.acquire()
	if m == nil {
		writeError(w, http.StatusServiceUnavailable, "no model loaded yet")
		return
	}
	defer m.inflight.Done()
	name := r.PathValue("name")
	id := classIndex(m.p.Classes(), name)
	if id < 0 {
		if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < len(m.p.Classes()) {
			id = n
		}
	}
	if id < 0 {
		msg := fmt.Sprintf("no class %q", name)
		if like := classLike(m.p.Classes(), name); like != "" {
			msg += fmt.Sprintf("; did you mean %q?", like)
		}
		writeError(w, http.StatusNotFound, msg+"; GET /classes lists them")
		return
	}
	f, ext, err := m.p.Example(id)
	if err != nil {
		writeError(w, http.StatusNotFound, "this model carries no example image for "+name)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", mime.TypeByExtension(ext))
	// The URL stays while the model behind it changes (a promotion, a rollback, with other
	// classes or examples): browsers and proxies keep the image, but ask each time whether it
	// is still the served model's (ETag), which costs a 304 when it is.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", exampleETag(m.resolved, id))
	http.ServeContent(w, r, "", time.Time{}, f)
}

// exampleETag is the entity tag of the example image of class id of the model loaded from
// folder (after links): a promoted model's folder never changes, so neither does its examples.
func exampleETag(folder string, id int) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", folder, id)
	return fmt.Sprintf(`"%016x"`, h.Sum64())
}

func (s *server) handleModel(w http.ResponseWriter, r *http.Request) {
	m := s.acquire()
	if m == nil {
		writeError(w, http.StatusServiceUnavailable, "no model loaded yet")
		return
	}
	defer m.inflight.Done()
	b, err := m.p.CardJSON()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// healthResponse is the body of /healthz.
type healthResponse struct {
	Status string `json:"status"` // "ok", or "no model loaded" (503)
	Model  string `json:"model,omitempty"`
	// PendingModelError is why the model the folder now points to is not served.
	PendingModelError string `json:"pending_model_error,omitempty"`
	// InFlight counts the /predict requests admitted (their upload being read, waiting for
	// an inference slot, or inferring), of Capacity (--concurrency plus --queue); Busy is
	// InFlight at Capacity, when a /predict is turned away at once (503).
	InFlight  int  `json:"in_flight"`
	Capacity  int  `json:"capacity"`
	Inferring int  `json:"inferring"` // of --concurrency
	Busy      bool `json:"busy"`
}

// handleHealth says whether a model is served, which, and, in pending_model_error, why the
// model the folder now points to is not (it failed to load or to predict, or the folder
// cannot be read), so that a promotion the server refused is seen, not only logged; and how
// full the admission queue is, so that a server turning requests away as busy is seen too.
// Busy, it still answers 200: it is alive, and takes requests again as those in flight end.
func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	body := healthResponse{Status: "ok", Model: s.currentID(), PendingModelError: s.pendingError(),
		InFlight: len(s.queue), Capacity: cap(s.queue), Inferring: len(s.slots)}
	body.Busy = body.InFlight >= body.Capacity
	status := http.StatusOK
	if body.Model == "" {
		body.Status, status = "no model loaded", http.StatusServiceUnavailable
	}
	writeJSONResponse(w, status, body)
}

// classIndex is the index of the class called name, -1 when none is. Either Unicode form of
// an accent names the class (the split stores the composed one; models trained before may
// hold either).
func classIndex(classes []string, name string) int {
	for i, c := range classes {
		if c == name {
			return i
		}
	}
	for i, c := range classes {
		if norm.NFC.String(c) == norm.NFC.String(name) {
			return i
		}
	}
	return -1
}

// classLike returns the class a mistyped or shortened name most likely means: a near spelling
// (pipeline.Suggest), else the only class whose name contains it, ignoring case ("Boletus
// edulis" for "Boletus edulis (Karl Johan)"); "" when there is none or more than one.
func classLike(classes []string, name string) string {
	if s := pipeline.Suggest(name, classes); s != "" {
		return s
	}
	if len(name) < 3 {
		return ""
	}
	like := ""
	for _, c := range classes {
		if strings.Contains(strings.ToLower(c), strings.ToLower(name)) {
			if like != "" {
				return ""
			}
			like = c
		}
	}
	return like
}
