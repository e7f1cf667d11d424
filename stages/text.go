package stages

import "pipeline/pipeline"

// plural is pipeline.Plural: n with the noun that agrees with it ("1 image", "2 images").
func plural(n int, one, many string) string { return pipeline.Plural(n, one, many) }

// agree picks the word that agrees with n, without the number: a verb ("carries", "carry")
// or a noun that comes later in the sentence.
func agree(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
