package pipeline

import (
	"strconv"
	"strings"
)

// Plural returns n followed by the noun that agrees with it: Plural(1, "image", "images") is
// "1 image", Plural(0, "image", "images") is "0 images". Messages use it instead of
// "1 images" or "image(s)".
func Plural(n int, one, many string) string {
	if n == 1 || n == -1 {
		return strconv.Itoa(n) + " " + one
	}
	return strconv.Itoa(n) + " " + many
}

// Agree returns one for n == 1, else other, without the number: the form of a word or phrase
// that agrees with a count said elsewhere (a verb, "carries" or "carry"; "folder added: …"
// or "folders added: …").
func Agree(n int, one, other string) string {
	if n == 1 {
		return one
	}
	return other
}

// WithArticle puts "a" or "an" before a noun phrase, by its first letter: WithArticle("object")
// is "an object", WithArticle("list of string") is "a list of string". It is meant for the
// type names of go-cty (FriendlyName) and the stage kind names, which are plain English
// words; it does not know exceptions such as "an hour" or "a user".
func WithArticle(noun string) string {
	if noun != "" && strings.ContainsRune("aeiouAEIOU", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

// Suggest returns the option closest to given when it is close enough to be a likely typo,
// else "": what a message offers as `did you mean "..."?`.
func Suggest(given string, options []string) string { return suggest(given, options) }
