package main

import (
	"fmt"
	"go/token"
	"go/types"
	"regexp"
	"strings"
	"unicode"
)

// serviceName is what a service name may be: it is service.name in the
// config (which allows more), the directory's default, the binary's name
// and, without its hyphens, the name of the handlers' package.
var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// reservedPackages are the names main.go cannot import the handlers'
// package under: its imports, its declarations and its locals.
var reservedPackages = map[string]bool{
	"main": true, "run": true, "service": true, "newservice": true, "init": true,
	"context": true, "flag": true, "fmt": true, "os": true, "time": true,
	"cqrs": true, "framework": true, "wire": true, "eventstore": true, "saga": true,
	"svc": true, "cleanup": true, "err": true, "ctx": true, "cancel": true, "args": true, "configpath": true,
}

// validateServiceName checks name for scaffold new and returns the name
// of its handlers' package.
func validateServiceName(name string) (pkg string, err error) {
	if name == "" {
		return "", fmt.Errorf("a service name is required: scaffold new <name> --module <path>")
	}
	if !serviceName.MatchString(name) || strings.HasSuffix(name, "-") {
		return "", fmt.Errorf("service name %q: want lower-case letters, digits and '-', starting with a letter (it names the package, the binary and service.name)", name)
	}
	pkg = strings.ReplaceAll(name, "-", "")
	switch {
	case token.IsKeyword(pkg):
		return "", fmt.Errorf("service name %q: its package name %q is a Go keyword", name, pkg)
	case reservedPackages[pkg] || types.Universe.Lookup(pkg) != nil:
		return "", fmt.Errorf("service name %q: its package name %q would clash with a name main.go uses; choose another", name, pkg)
	}
	return pkg, nil
}

// reservedNames are declared by the files scaffold generates in the
// handlers' package.
var reservedNames = map[string]bool{"Register": true, "Deps": true, "Commands": true, "Events": true, "Send": true, "Publish": true}

// validateTypeName checks the name of a piece for scaffold add.
func validateTypeName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a name is required: scaffold add %s <Name>", kind)
	case token.IsKeyword(name):
		return fmt.Errorf("name %q is a Go keyword; want an exported Go identifier such as PlaceOrder", name)
	case !token.IsIdentifier(name):
		return fmt.Errorf("name %q is not a Go identifier; want an exported Go identifier such as PlaceOrder", name)
	case !token.IsExported(name):
		return fmt.Errorf("name %q is not exported (it must start with an upper-case letter, e.g. %q)", name, exportedForm(name))
	case reservedNames[name]:
		return fmt.Errorf("name %q is declared by the generated register_gen.go; choose another", name)
	case strings.HasPrefix(name, "Test"):
		return fmt.Errorf("name %q starts with Test, which go test would take for a test; choose another", name)
	}
	return nil
}

// exportedForm upper-cases the first letter of name.
func exportedForm(name string) string {
	r := []rune(name)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// words splits a Go identifier into its lower-case words: PlaceOrder ->
// place, order; HTTPServer -> http, server; OrderV2 -> order, v2.
func words(name string) []string {
	r := []rune(name)
	var out []string
	start := 0
	for i := 1; i < len(r); i++ {
		lowerBefore := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
		upperRun := unicode.IsUpper(r[i-1]) && i+1 < len(r) && unicode.IsLower(r[i+1])
		if unicode.IsUpper(r[i]) && (lowerBefore || upperRun) || r[i] == '_' {
			out = append(out, string(r[start:i]))
			start = i
			if r[i] == '_' {
				start++
			}
		}
	}
	out = append(out, string(r[start:]))
	kept := out[:0]
	for _, w := range out {
		if w != "" {
			kept = append(kept, strings.ToLower(w))
		}
	}
	return kept
}

// snake is name in snake_case, for file names.
func snake(name string) string { return strings.Join(words(name), "_") }

// kebab is name in kebab-case, for handler names.
func kebab(name string) string { return strings.Join(words(name), "-") }
