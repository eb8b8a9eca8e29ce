package templates_test

import (
	"fmt"
	"io/fs"

	"github.com/millrace/millrace/templates"
)

// The templates of one kind of piece that scaffold add renders.
func ExampleFS() {
	names, err := fs.Glob(templates.FS, "add/command/*.tmpl")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		fmt.Println(n)
	}
	// Output:
	// add/command/command.go.tmpl
	// add/command/command_test.go.tmpl
}
