// Command cfimgsync keeps a folder mirrored to Cloudflare Images through the Images batch API.
//
// main.go is the composition root: it parses the command line, builds the parts and maps
// error kinds to exit codes. The work itself lives in the packages.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "cfimgsync: under construction")
	os.Exit(2)
}
