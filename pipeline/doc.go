// Package pipeline is the engine: it reads pipeline.hcl, builds the stage DAG, computes each
// stage's cache key from everything that affects its result, and runs what is out of date.
// It sees stage kinds only through an interface and never imports TensorFlow.
package pipeline
