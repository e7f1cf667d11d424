package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/pipeline/regular"
	"pipeline/stages"
)

// serveOptions are the server's limits and thresholds.
type serveOptions struct {
	MaxBody     int64         // bytes per request
	MaxPixels   int64         // pixels per image, checked from the header
	Concurrency int           // inferences at once
	Queue       int           // requests waiting for an inference slot; beyond, 503
	Wait        time.Duration // longest wait for a slot
	// An admitted upload must arrive at UploadRate bytes a second on average once
	// UploadGrace has passed, within UploadLimit in all, or it gives its place back (408).
	UploadRate  int64
	UploadGrace time.Duration
	UploadLimit time.Duration
	WarnSum     float64 // warn when the top five sum to less
	WarnTop     float64 // warn when the first is below
	TopK        int
	Reload      time.Duration // how often to look for a newly promoted model
}

func defaultServeOptions() serveOptions {
	return serveOptions{MaxBody: 10 << 20, MaxPixels: stages.DefaultMaxPixels, Concurrency: 2, Queue: 32, Wait: 10 * time.Second,
		UploadRate: 16 << 10, UploadGrace: 5 * time.Second, UploadLimit: 60 * time.Second,
		WarnSum: 0.9, WarnTop: 0.6, TopK: 5, Reload: 2 * time.Second}
}

// server answers predictions from the model in modelDir, reloading it when a new one is
// promoted there.
type server struct {
	modelDir string
	opts     serveOptions
	logger   *log.Logger

	mu  sync.RWMutex
	cur *servedModel
	// failed is the model folder and stamp that last failed to load, so that the watcher
	// says so once, not every few seconds, until it changes, and why, for /healthz; cleared
	// when a model loads or the folder points to the served one again.
	failed struct {
		resolved string
		stamp    time.Time
		err      error
	}

	// unreachable counts the watcher's checks in a row that found no model folder to read
	// (the link leading nowhere, the folder gone): the first is taken for a promotion
	// switching the link; from the second on, each reason is reported once.
	unreachable int
	// unreachableSaid is the reason last logged for it ("" for none).
	unreachableSaid string
	// damagedSaid is what was last logged of the served model's files damaged on disk (""
	// while they are whole).
	damagedSaid string

	slots chan struct{} // inference slots
	queue chan struct{} // admission: slots plus waiting room

	// stampFiles is the function of that name; tests replace it to see what is served while
	// it reads.
	stampFiles func(dir string) map[string]fileStamp
}

// servedModel is a loaded model with a count of requests using it, so a reload can close
// the old one only after they finish.
type servedModel struct {
	p        *stages.Predictor
	resolved string // the folder it was loaded from, after links
	name     string // what the log, /healthz and /predict call it: modelName
	stamp    time.Time
	// files is the size, modification time and SHA-256 of each file of the model when it
	// was loaded: a promoted model's files never change, so one whose content does was
	// damaged on disk (truncated, overwritten), which CheckFiles, looking for missing files,
	// cannot tell. A file only touched, or put back as it was, is not. Nil until the watcher
	// takes them (stampServed), right after the switch to the model.
	files    map[string]fileStamp
	inflight sync.WaitGroup
}

// fileStamp is what a served model's file was when it was loaded: its kind, its content's
// digest, and the size and modification time it was last seen with (damaged: with other
// content). A file that is not a regular one after links (a named pipe, a device) is never
// read, as reading a named pipe with no writer waits for ever: only its kind is kept, and it
// is damaged when gone or of another kind.
type fileStamp struct {
	kind    fs.FileMode // type bits, after links: 0 for a regular file
	size    int64
	modTime time.Time
	digest  string // SHA-256, hex
	damaged bool
}

// stampFiles returns the stamp of every file under dir, by path relative to it.
func stampFiles(dir string) map[string]fileStamp {
	files := map[string]fileStamp{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if st, err := stampFile(p); err == nil {
				rel, _ := filepath.Rel(dir, p)
				files[rel] = st
			}
		}
		return nil
	})
	return files
}

// stampFile returns the stamp of the file at path. A file that is not a regular one is not
// read, nor even opened (regular.Open): only its kind is kept.
func stampFile(path string) (fileStamp, error) {
	f, fi, err := regular.Open(path)
	var notRegular *regular.Error
	if errors.As(err, &notRegular) {
		return fileStamp{kind: notRegular.Kind}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), digest: hex.EncodeToString(h.Sum(nil))}, nil
}

// fileKind says what a file of kind (type bits) is, for a file that was of another kind.
func fileKind(kind fs.FileMode, size int64) string {
	if kind == 0 {
		return fmt.Sprintf("a regular file of %d bytes", size)
	}
	return regular.Kind(kind)
}

// changedFile names a file of dir whose content is not what it was when the model was
// loaded (files, which it updates), and how; "" when none. A regular file is read again
// only when its size or modification time changed since it was last looked at; any other
// is never read, only told from one of another kind.
func changedFile(dir string, files map[string]fileStamp) string {
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		st := files[rel]
		fi, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			return fmt.Sprintf("its file %s is gone", filepath.ToSlash(rel))
		}
		if kind := fi.Mode().Type(); kind != st.kind {
			return fmt.Sprintf("its file %s changed on disk since it was loaded (now %s)", filepath.ToSlash(rel), fileKind(kind, fi.Size()))
		}
		if st.kind != 0 {
			continue
		}
		if fi.Size() != st.size || !fi.ModTime().Equal(st.modTime) {
			now, err := stampFile(filepath.Join(dir, rel))
			if err != nil {
				return fmt.Sprintf("its file %s cannot be read: %v", filepath.ToSlash(rel), err)
			}
			if now.kind != 0 { // replaced since the stat above
				return fmt.Sprintf("its file %s changed on disk since it was loaded (now %s)", filepath.ToSlash(rel), fileKind(now.kind, 0))
			}
			st.size, st.modTime, st.damaged = now.size, now.modTime, now.digest != st.digest
			files[rel] = st
		}
		if st.damaged {
			return fmt.Sprintf("its file %s changed on disk since it was loaded (now %d bytes)", filepath.ToSlash(rel), st.size)
		}
	}
	return ""
}

func newServer(modelDir string, opts serveOptions, logger *log.Logger) *server {
	return &server{modelDir: modelDir, opts: opts, logger: logger, stampFiles: stampFiles,
		slots: make(chan struct{}, opts.Concurrency), queue: make(chan struct{}, opts.Concurrency+opts.Queue)}
}

// modelStamp identifies the model folder's current version: the link target and the card's
// modification time.
func modelStamp(dir string) (string, time.Time, error) {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", time.Time{}, err
	}
	var t time.Time
	// The card of a promoted folder (or a SavedModel's own model.json), else its SavedModel's.
	saved, _ := stages.PromotedSavedModel(resolved)
	for _, d := range []string{resolved, saved} {
		if fi, err := os.Stat(filepath.Join(d, "model.json")); err == nil {
			t = fi.ModTime()
			break
		}
	}
	return resolved, t, nil
}

// errLoadFailedBefore is reload's answer for a model folder that failed to load and has not
// changed since: the failure was reported then.
var errLoadFailedBefore = errors.New("the model failed to load before and has not changed")

// folderError is reload's error when the model folder cannot be read at all: a link leading
// nowhere, a folder gone or not there yet.
type folderError struct{ error }

func (e folderError) Unwrap() error { return e.error }

// damagedError is reload's error when the files of the model served are damaged on disk (its
// weights deleted, say): it is still served from memory, but would not load again, in a
// restarted server or another replica.
type damagedError struct{ error }

func (e damagedError) Unwrap() error { return e.error }

// reload loads the model if it changed since the last load; it reports what happened.
func (s *server) reload() (bool, error) {
	resolved, stamp, err := modelStamp(s.modelDir)
	if err != nil {
		return false, folderError{err}
	}
	s.mu.Lock()
	cur := s.cur
	if cur != nil && cur.resolved == resolved && cur.stamp.Equal(stamp) {
		s.mu.Unlock()
		// The served model's files, checked again (a few stat calls, and a read of a file
		// that changed): what a restart needs. Outside the lock, which requests take: only
		// this goroutine (the watcher, or serve before it starts) reloads, and reads and
		// writes cur.files.
		if cur.files == nil {
			cur.files = s.stampFiles(cur.p.Dir)
		}
		err := graphs.CheckFiles(cur.p.Dir)
		if changed := changedFile(cur.p.Dir, cur.files); err == nil && changed != "" {
			err = &graphs.BrokenModelError{Dir: cur.p.Dir, Problem: changed}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.failed.resolved, s.failed.stamp, s.failed.err = resolved, stamp, damagedError{err}
			return false, damagedError{err}
		}
		s.failed.resolved, s.failed.err = "", nil // back to the served model (a rollback)
		return false, nil
	}
	known := s.failed.resolved == resolved && s.failed.stamp.Equal(stamp)
	s.mu.Unlock()
	if known {
		return false, errLoadFailedBefore
	}
	// LoadPredictor makes one prediction on a blank image: a model that cannot predict (its
	// weights deleted) is refused here, and the one served stays.
	p, err := stages.LoadPredictor(resolved, 0)
	if err != nil {
		s.mu.Lock()
		s.failed.resolved, s.failed.stamp, s.failed.err = resolved, stamp, err
		s.mu.Unlock()
		return false, err
	}
	// Its files are stamped after the switch (stampServed): the load has just read them all,
	// and reading them again first (a VGG19's weights are over 500 MB) kept the previous
	// model answering for as long.
	next := &servedModel{p: p, resolved: resolved, stamp: stamp, name: modelName(s.modelDir, resolved, p)}
	s.mu.Lock()
	old := s.cur
	s.cur = next
	s.failed.resolved, s.failed.err = "", nil
	s.mu.Unlock()
	if old != nil {
		go func() {
			old.inflight.Wait()
			old.p.Close()
		}()
	}
	return true, nil
}

// stampServed records what each file of the model served holds (stampFiles), for later
// checks to tell a file damaged on disk, when that is not recorded yet: for a model just
// switched to, which answers requests meanwhile. Called as soon as the switch is made, it
// reads the files the load has just read, as it did when the switch waited for it. Only the
// watcher (or serve before it starts it) calls it.
func (s *server) stampServed() {
	s.mu.RLock()
	cur := s.cur
	s.mu.RUnlock()
	if cur != nil && cur.files == nil {
		cur.files = s.stampFiles(cur.p.Dir)
	}
}

// watch stamps the files of the model loaded at start (stampServed), then reloads
// periodically until ctx ends.
func (s *server) watch(ctx context.Context) {
	s.stampServed()
	t := time.NewTicker(s.opts.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.poll()
		}
	}
}

// poll reloads the model if it changed and logs what happened: a model that fails to load or
// to predict is logged once, with what to do, and the one served stays.
//
// A model folder that cannot be read (its link leads nowhere, it is gone) is let be at the
// first check, which may have come as a promotion replaced the link; at the second it is
// reported as a model that fails to load is, unless nothing was ever promoted there (the
// server waits for a first model, as it said when it started).
func (s *server) poll() {
	changed, err := s.reload()
	defer s.stampServed() // a model switched to, once the switch is said
	var fe folderError
	if !errors.As(err, &fe) {
		if s.unreachableSaid != "" && err == nil && !changed {
			s.logger.Printf("%s is back: serving %s", s.modelDir, s.currentID())
		}
		s.unreachable, s.unreachableSaid = 0, ""
	} else {
		s.unreachable++
		if s.unreachable < 2 {
			return
		}
		// Said once per reason: a reason that changes (a champion now named that is not
		// there) is said again.
		err = s.unreachableError(fe.error)
		said := ""
		if err != nil {
			said = err.Error()
		}
		if said == s.unreachableSaid {
			return
		}
		s.unreachableSaid = said
		if err == nil {
			return
		}
	}
	var damaged damagedError
	if !errors.As(err, &damaged) && s.damagedSaid != "" {
		s.damagedSaid = ""
		if err == nil && !changed {
			s.logger.Printf("the files of %s are whole again", s.currentID())
		}
	}
	switch {
	case errors.As(err, &damaged):
		if said := damaged.Error(); said != s.damagedSaid {
			s.damagedSaid = said
			s.logger.Printf("still serving %s from memory, but its files are damaged: a restart would not load it: %v", s.currentID(), explainModelError(s.modelDir, damaged.error))
		}
	case errors.Is(err, errLoadFailedBefore): // reported when it first failed
	case err != nil && s.currentID() != "":
		s.logger.Printf("not switching to the model now in %s, still serving %s: %v", s.modelDir, s.currentID(), explainModelError(s.modelDir, err))
	case err != nil:
		s.logger.Printf("cannot serve the model now in %s (answering 503 meanwhile): %v", s.modelDir, explainModelError(s.modelDir, err))
	case changed:
		s.logger.Printf("serving model %s", s.currentID())
	}
}

// unreachableError is why the model folder cannot be read (err, from modelStamp), recorded
// for /healthz, or nil when that is no problem: nothing served and nothing promoted there
// yet. A folder whose promotions name a champion that is not there says which and what to do.
func (s *server) unreachableError(err error) error {
	var missing *stages.MissingChampionError
	_, cerr := stages.ChampionDir(s.modelDir)
	switch {
	case errors.As(cerr, &missing):
		err = missing
	case errors.Is(err, fs.ErrNotExist) && s.currentID() == "":
		return nil
	case errors.Is(err, fs.ErrNotExist):
		err = fmt.Errorf("%s is gone", s.modelDir)
	}
	s.mu.Lock()
	s.failed.resolved, s.failed.stamp, s.failed.err = "", time.Time{}, err
	s.mu.Unlock()
	return err
}

// pendingError is why the model the folder now points to is not served ("" when it is, or
// when none failed).
func (s *server) pendingError() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.failed.err == nil {
		return ""
	}
	return s.failed.err.Error()
}

// acquire returns the current model, counted as in use; release with done().
func (s *server) acquire() *servedModel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur != nil {
		s.cur.inflight.Add(1)
	}
	return s.cur
}

// currentID is the served model's name (modelName), "" when none is served.
func (s *server) currentID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		return ""
	}
	return s.cur.name
}

// modelName is what the server calls the model p it loaded from resolved, given as dir: the
// card's id for a promoted folder (or its saved_model); else the path as given, or, when a
// link is on the way (which may be switched to another model), the folder it leads to.
func modelName(dir, resolved string, p *stages.Predictor) string {
	if p.Card != nil && p.Card.ID != "" {
		return p.Card.ID
	}
	abs, err := filepath.Abs(dir)
	to, rerr := filepath.Abs(resolved)
	if err == nil && rerr == nil && abs != to {
		return resolved
	}
	return filepath.Clean(dir)
}

func (s *server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.cur.inflight.Wait()
		s.cur.p.Close()
		s.cur = nil
	}
}

// check refuses option values that make no sense, naming the flag, before the server starts.
func (o serveOptions) check() error {
	switch {
	case o.MaxBody < 1:
		return fmt.Errorf("--max-body %d: the largest request must be at least 1 byte", o.MaxBody)
	case o.Concurrency < 1:
		return fmt.Errorf("--concurrency %d: the number of inferences at once must be at least 1", o.Concurrency)
	case o.Queue < 0:
		return fmt.Errorf("--queue %d: the number of requests waiting must be 0 or more", o.Queue)
	}
	return checkImageFlags(o.MaxPixels, o.WarnSum, o.WarnTop)
}

// checkImageFlags refuses values of the flags predict and serve share that make no sense:
// --max-pixels below 1, and --warn-sum or --warn-top outside [0, 1] (they are compared with
// confidences; 0 turns the warning off).
func checkImageFlags(maxPixels int64, warnSum, warnTop float64) error {
	if maxPixels < 1 {
		return fmt.Errorf("--max-pixels %d: the largest image must be at least 1 pixel", maxPixels)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"warn-sum", warnSum}, {"warn-top", warnTop}} {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("--%s %g: a confidence threshold must be between 0 and 1 (0 turns the warning off)", f.name, f.v)
		}
	}
	return nil
}

// httpServer is the server's HTTP side with its timeouts. net/http sets a request's write
// deadline when its headers are in: it leaves room for the upload, the wait for a slot and
// the inference, or the answer (a 408 for an upload cut off at UploadLimit too) would be
// computed and never sent.
func (s *server) httpServer(logger *log.Logger) *http.Server {
	return &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.opts.UploadLimit,
		WriteTimeout: s.opts.UploadLimit + s.opts.Wait + 60*time.Second, IdleTimeout: 120 * time.Second, ErrorLog: logger}
}

// isPromotionFolder reports whether dir is where a select stage promotes its winner, which a
// run may fill later: a folder named final_models (select's default promote_to), or one with
// the promotions' dir.d folder beside it.
func isPromotionFolder(dir string) bool {
	if _, err := os.Stat(filepath.Dir(filepath.Clean(dir))); err != nil {
		return false // modles/final_models: a typo, not a folder a run will fill
	}
	if stages.HasDefaultPromotionName(dir) {
		return true
	}
	fi, err := os.Stat(filepath.Clean(dir) + ".d")
	return err == nil && fi.IsDir()
}

func serveCommand() *cli.Command {
	d := defaultServeOptions()
	return &cli.Command{
		Name:  "serve",
		Usage: "answer top-5 predictions over HTTP, with an upload page at /",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: stages.DefaultPromoteTo, Usage: "model folder; a newly promoted model there is picked up without restarting"},
			&cli.StringFlag{Name: "addr", Value: "localhost:5000", Usage: "listen address"},
			&cli.Int64Flag{Name: "max-body", Value: d.MaxBody, Usage: "largest request in bytes (413 beyond; 10485760 is 10 MiB)"},
			&cli.Int64Flag{Name: "max-pixels", Value: d.MaxPixels, Usage: "largest image in pixels, checked before decoding (413 beyond)"},
			&cli.IntFlag{Name: "concurrency", Value: d.Concurrency, Usage: "inferences at once"},
			&cli.IntFlag{Name: "queue", Value: d.Queue, Usage: "requests waiting for an inference (503 beyond)"},
			&cli.Float64Flag{Name: "warn-sum", Value: d.WarnSum, Usage: "warn when the top five sum to less"},
			&cli.Float64Flag{Name: "warn-top", Value: d.WarnTop, Usage: "warn when the best is below"},
		},
		Action: func(c *cli.Context) error {
			// A server outlives the reader of its log (`pipeline serve 2>&1 | tee serve.log`, a
			// log shipper restarted): SIGPIPE at its next line would kill it, in-flight requests
			// and all, where the log's writes now fail and the requests are answered.
			ignoreBrokenPipes()
			if c.NArg() > 0 {
				next := "give the model folder with --model PATH"
				if c.NArg() == 1 {
					next = "to serve the model there, give it with --model " + c.Args().First()
				}
				return fmt.Errorf("serve takes no arguments, got %q; %s", c.Args().Slice(), next)
			}
			opts := defaultServeOptions()
			opts.MaxBody, opts.MaxPixels = c.Int64("max-body"), c.Int64("max-pixels")
			opts.Concurrency, opts.Queue = c.Int("concurrency"), c.Int("queue")
			opts.WarnSum, opts.WarnTop = c.Float64("warn-sum"), c.Float64("warn-top")
			if err := opts.check(); err != nil {
				return err
			}
			model := c.String("model")
			logger := log.New(c.App.ErrWriter, "", log.LstdFlags)
			s := newServer(model, opts, logger)
			// The model is looked at before listening, so that a --model that cannot serve
			// is said whatever --addr says; what is served is said once listening, so that a
			// server that cannot listen announces nothing.
			var noModel error // why no model is served yet
			if _, err := s.reload(); err != nil {
				// Only a promotion folder may be without a model that loads: a run's select
				// or pipeline promote can put one there. Any other path is a mistake to say now.
				var fe folderError
				if !isPromotionFolder(model) {
					parent := filepath.Dir(filepath.Clean(model))
					if _, perr := os.Stat(parent); stages.HasDefaultPromotionName(model) && perr != nil {
						return fmt.Errorf("--model %s: its folder %s does not exist: run the pipeline here first (its select stage promotes into it), or give a model folder that exists", model, parent)
					}
					if _, serr := os.Lstat(model); errors.Is(serr, fs.ErrNotExist) {
						return fmt.Errorf("--model %s: nothing is there; give a model folder that exists (serve waits for a model to appear only in a promotion folder, one named final_models or with its .d folder beside it)", model)
					}
					return fmt.Errorf("--model %w", explainModelError(model, err))
				}
				if errors.As(err, &fe) {
					s.unreachable = 2 // said here: the watcher does not say it again
					if uerr := s.unreachableError(fe.error); uerr != nil {
						err, s.unreachableSaid = uerr, uerr.Error()
					} else if errors.Is(fe.error, fs.ErrNotExist) {
						err = errors.New("nothing is promoted there yet")
					}
				} else {
					err = explainModelError(model, err)
				}
				noModel = err
			}
			ln, err := listen(c.String("addr"))
			if err != nil {
				s.close()
				return err
			}
			if noModel != nil {
				logger.Printf("no model to serve at %s (%v); answering 503 until a model that loads is promoted there", model, noModel)
			} else {
				logger.Printf("serving model %s", s.currentID())
			}
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			ctx, stopWatching := context.WithCancel(c.Context)
			defer stopWatching()
			go s.watch(ctx)
			conns := &connStates{}
			srv := s.httpServer(logger)
			srv.ConnState = conns.track
			logger.Printf("listening on %s", listenURL(c.String("addr"), ln.Addr()))
			finished, err := serveUntilStopped(srv, ln, conns, sigs, serveGrace, logger)
			stopWatching()
			if finished {
				s.close()
			} // else requests closed may still be running the model: the process ends without freeing it
			return err
		},
	}
}

// listen listens on addr (--addr), or says why it cannot, naming the address: one that another
// program listens on is said to be in use, with what to do.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("--addr %s: the address is in use: another program (another serve?) listens there; stop it, or give another port with --addr", addr)
	case errors.As(err, &op):
		return nil, fmt.Errorf("--addr %s: %w", addr, op.Err) // without "listen tcp ADDR:"
	case err != nil:
		return nil, fmt.Errorf("--addr %s: %w", addr, err)
	}
	return ln, nil
}

// serveGrace is how long a shutdown lets requests in flight finish before closing them.
const serveGrace = 30 * time.Second

// serveUntilStopped serves srv on ln until the first SIGINT or SIGTERM on sigs, then stops
// taking requests and lets those in flight finish, for up to grace; after grace, or at a
// second signal, it closes them (their clients see the connection closed). Either way the
// stop is the one asked for, not a failure: it returns a nil error, and whether every request
// finished. It returns the error of a server that stopped by itself.
func serveUntilStopped(srv *http.Server, ln net.Listener, conns *connStates, sigs <-chan os.Signal, grace time.Duration, logger *log.Logger) (bool, error) {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var sig os.Signal
	select {
	case err := <-errc:
		return true, err
	case sig = <-sigs:
	}
	if n := conns.active(); n == 0 {
		logger.Printf("%s: no request in flight; shutting down", signalName(sig))
	} else {
		logger.Printf("%s: shutting down; %s in flight %s for up to %s; SIGINT or SIGTERM again closes %s at once",
			signalName(sig), pipeline.Plural(n, "request", "requests"), pipeline.Agree(n, "finishes", "finish"), seconds(grace), pipeline.Agree(n, "it", "them"))
	}
	done := make(chan struct{})
	go func() {
		srv.Shutdown(context.Background()) // returns once every connection is idle, or srv.Close
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		logger.Printf("stopped")
		return true, nil
	case <-timer.C:
		logger.Printf("%s still in flight after %s: closed; stopped", pipeline.Plural(conns.active(), "request", "requests"), seconds(grace))
	case sig := <-sigs:
		logger.Printf("%s: %s still in flight closed; stopped", signalName(sig), pipeline.Plural(conns.active(), "request", "requests"))
	}
	srv.Close()
	return false, nil
}

// seconds says a duration as the README does: "30 s", "0.5 s".
func seconds(d time.Duration) string { return fmt.Sprintf("%g s", d.Seconds()) }

// connStates follows the server's connections (http.Server.ConnState), so that a shutdown
// can say how many requests it waits for, and how many it closed.
type connStates struct {
	mu     sync.Mutex
	states map[net.Conn]http.ConnState
}

func (c *connStates) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.states == nil {
		c.states = map[net.Conn]http.ConnState{}
	}
	if state == http.StateClosed || state == http.StateHijacked {
		delete(c.states, conn)
		return
	}
	c.states[conn] = state
}

// active counts the connections with a request being read or answered.
func (c *connStates) active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, st := range c.states {
		if st == http.StateActive {
			n++
		}
	}
	return n
}

// listenURL is the address to open for a server started with --addr addr and listening on
// ln: the host as given, or localhost when it listens on every interface (":5000",
// "0.0.0.0:5000"), which is said; the port it got (":0" picks one).
func listenURL(addr string, ln net.Addr) string {
	host, _, _ := net.SplitHostPort(addr)
	_, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return "http://" + ln.String() + "/"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "http://" + net.JoinHostPort("localhost", port) + "/ (every interface: from another machine, this one's name or address, port " + port + ")"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
