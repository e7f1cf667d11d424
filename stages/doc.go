// Package stages holds the stage kinds a pipeline is made of: split, augment, train,
// evaluate and select, plus the image I/O they share.
package stages
