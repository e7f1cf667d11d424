// Package testmodel writes small real SavedModels for tests: a tiny untrained CNN for 8×8
// grey images, exported once per test binary and class count, then copied where a test wants
// one. It is for tests only; it does not train, and its models answer at random.
package testmodel
