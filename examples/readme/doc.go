// Package readme holds the Go code that README.md shows, verbatim, so that
// it compiles and its tests run: readme_test.go fails when a Go sample of
// the README is not found here word for word.
package readme
