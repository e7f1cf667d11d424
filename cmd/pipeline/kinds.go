package main

import "pipeline/pipeline"

// registry returns the stage kinds this build knows.
func registry() (*pipeline.Registry, error) {
	return pipeline.NewRegistry()
}
