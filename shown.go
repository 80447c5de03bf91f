package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// shown makes a file name (or a reason that may quote one) safe to print for people: the
// folder may be written by programs we do not trust, and a name holding a newline or a
// terminal escape could otherwise forge lines in output that ends up in tickets and chat
// (DESIGN §12). Ordinary names, spaces and non-ASCII letters included, print as they are;
// anything with a control character or invalid UTF-8 prints Go-quoted.
func shown(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// shownErr is shown for an error's text.
func shownErr(err error) string {
	if err == nil {
		return ""
	}
	return shown(err.Error())
}
