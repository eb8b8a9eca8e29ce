package main

import (
	"fmt"
	"sort"
	"strings"
)

// A kind is a set of templates that scaffold add renders for one piece of
// a service: add/<name>/<name>.go.tmpl and add/<name>/<name>_test.go.tmpl,
// written to <snake(Name)>_<name>.go and its _test.go. The piece's file
// declares a func register<Name>(bus *cqrs.Bus), or (bus *cqrs.Bus, deps
// Deps) for a kind that needs more than the bus, marked with the directive
//
//	//scaffold:<name> <Name>
//
// which is all register_gen.go is made from: a new kind (projection, saga)
// is a new entry here, its two templates, and, if it needs something
// besides the bus, a field of Deps (gen/register_gen.go.tmpl) that main.go
// fills.
type kind struct {
	// name is the word on the command line and in the directive.
	name string
	// summary is what scaffold add --help says of it.
	summary string
	// order places its registrations in Register: lower first.
	order int
	// data adds what its templates need beyond the common fields.
	data func(d map[string]any, name string)
	// deps says its registration function takes Deps after the bus.
	deps bool
	// sends and publishes name the commands and events of a piece of type
	// name that register_gen.go's Send and Publish take (those the package
	// declares).
	sends, publishes func(name string) []string
}

var kinds = []kind{
	{
		name: "command", order: 0, sends: itself,
		summary: "a command (a request to change something), its one handler and its tests",
		data:    func(d map[string]any, name string) { d["Publishes"] = "" },
	},
	{
		name: "event", order: 1, publishes: itself,
		summary: "an event (something that happened), a handler of it and its test",
		data:    func(d map[string]any, name string) { d["Handler"] = kebab(name) },
	},
	{
		name: "query", order: 2,
		summary: "a query, its answer type <Name>Result, its handler and its test",
		data:    func(d map[string]any, name string) { d["Result"] = name + "Result" },
	},
	{
		name: "aggregate", order: 3, deps: true,
		sends:   func(name string) []string { return []string{"Create" + name} },
		summary: "an event-sourced aggregate <Name>, its event <Name>Created, the command Create<Name> that records it, and their tests",
		data: func(d map[string]any, name string) {
			d["Created"] = name + "Created"
			d["Create"] = "Create" + name
			d["Err"] = "Err" + name + "Exists"
			d["Type"] = kebab(name)
		},
	},
	{
		name: "saga", order: 4, deps: true,
		sends:   func(name string) []string { return []string{"Start" + name} },
		summary: "an orchestrated saga <Name>: its state, the command Start<Name>, one step with its participant, and its test",
		data: func(d map[string]any, name string) {
			d["Start"] = "Start" + name
			d["Step"] = name + "FirstStep"
			d["Done"] = name + "FirstStepDone"
			d["Type"] = kebab(name)
		},
	},
}

// itself is the sends or publishes of a kind whose piece is the message.
func itself(name string) []string { return []string{name} }

// kindNamed returns the kind called name.
func kindNamed(name string) (kind, error) {
	for _, k := range kinds {
		if k.name == name {
			return k, nil
		}
	}
	return kind{}, fmt.Errorf("unknown kind %q; scaffold add takes %s", name, kindList())
}

// kindList is the names of the kinds, for messages.
func kindList() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// files returns the paths, relative to the package directory, of the two
// files of a piece of kind k called name.
func (k kind) files(name string) (code, test string) {
	base := snake(name) + "_" + k.name
	return base + ".go", base + "_test.go"
}
