package main

import (
	"bytes"
	"testing"
)

func TestExpoSample(t *testing.T) {
	var b bytes.Buffer
	e := expo{&b}
	e.family("x_total", "counter", "Things.")
	e.sample("x_total", 3, "folder", "a\"b\\c\nd", "op", "upload")
	e.sample("y", 0.25)
	want := "# HELP x_total Things.\n# TYPE x_total counter\n" +
		`x_total{folder="a\"b\\c\nd",op="upload"} 3` + "\n" + "y 0.25\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
