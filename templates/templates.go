// Package templates holds the text/template files that cmd/scaffold renders
// into services and their pieces: the single source of every skeleton the
// generator writes. They are embedded in [FS] so the scaffold binary works
// anywhere, offline.
//
// The layout of [FS]:
//
//	new/         a service: go.mod, main.go, wire.go, wire_gen.go, config.yaml, README.md, .gitignore, the package doc
//	add/<kind>/  one piece of a kind (command, event, query): <kind>.go.tmpl and <kind>_test.go.tmpl
//	gen/         the files scaffold owns and rewrites from what the package contains: register_gen.go, register_gen_test.go
//
// A template file is named after the file it renders with ".tmpl" appended.
// Templates are executed with missingkey=error; cmd/scaffold formats every
// Go file it renders with go/format and fails on a formatting error.
package templates

import "embed"

// FS holds the templates, rooted at this directory (paths such as
// "new/main.go.tmpl").
//
//go:embed new add gen
var FS embed.FS
