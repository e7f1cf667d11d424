// Package images holds what the serve benchmark's programs share: the test images they
// send and the multipart body that carries one.
package images

import (
	"bytes"
	"fmt"
	"io/fs"
	"mime/multipart"
	"path/filepath"
	"sort"
	"strings"
)

// Paths lists the .png files under dir, sorted, and keeps max of them spread evenly
// over the list (so every class is represented).
func Paths(dir string, max int) ([]string, error) {
	var all []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".png") {
			all = append(all, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(all)
	if len(all) == 0 {
		return nil, fmt.Errorf("no .png files under %s", dir)
	}
	if max <= 0 || max >= len(all) {
		return all, nil
	}
	out := make([]string, 0, max)
	for i := 0; i < max; i++ {
		out = append(out, all[i*len(all)/max])
	}
	return out, nil
}

// Multipart encodes data as a multipart/form-data body with one file field.
func Multipart(field, filename string, data []byte) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		return nil, "", err
	}
	fw.Write(data)
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}
