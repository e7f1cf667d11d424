package main

import (
	"pipeline/pipeline"
	"pipeline/stages"
)

// registry returns the stage kinds this build knows.
func registry() (*pipeline.Registry, error) {
	return pipeline.NewRegistry(stages.Split{}, stages.Augment{}, stages.Train{}, stages.Evaluate{}, stages.Select{})
}
