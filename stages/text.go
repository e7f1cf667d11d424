package stages

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"pipeline/pipeline"
)

// plural is pipeline.Plural: n with the noun that agrees with it ("1 image", "2 images").
func plural(n int, one, many string) string { return pipeline.Plural(n, one, many) }

// agree is pipeline.Agree: the word that agrees with n, without the number.
func agree(n int, one, many string) string { return pipeline.Agree(n, one, many) }

// logName returns a file or class name as a log line shows it unquoted: each character that
// is not graphic (a newline, a tab, a bidirectional override) written as Go escapes it ("\n",
// "\t", "\u202e"), as in the quoted names of other lines, and each byte that is not UTF-8 as
// \xNN; every other character, spaces and accents included, as it is, and so are the joiners
// that compose emoji and some scripts (U+200C, U+200D). A name then cannot break its line in
// two, or make it read otherwise than it is.
func logName(s string) string { return escapeName(s, escaped) }

// escapeName returns s with each byte that is not part of valid UTF-8 written as \xNN, and
// each character escape reports written as Go escapes it ("\n", "\u202e"); s itself when
// there is none.
func escapeName(s string, escape func(rune) bool) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == utf8.RuneError || escape(r) }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case escape(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// escaped reports whether logName writes r escaped.
func escaped(r rune) bool {
	return r == utf8.RuneError || !unicode.IsGraphic(r) && r != '\u200c' && r != '\u200d'
}

// logNames is logName of each of names.
func logNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = logName(n)
	}
	return out
}
