package stages

import "pipeline/pipeline"

// plural is pipeline.Plural: n with the noun that agrees with it ("1 image", "2 images").
func plural(n int, one, many string) string { return pipeline.Plural(n, one, many) }

// agree is pipeline.Agree: the word that agrees with n, without the number.
func agree(n int, one, many string) string { return pipeline.Agree(n, one, many) }
