package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path"
	"sort"
	"strings"
)

// directivePrefix starts the comment that marks a registration function.
const directivePrefix = "//scaffold:"

// entry is one registration function found in the package.
type entry struct {
	Kind string // command, event, query
	Type string // the message type it handles
	Func string // register<Type>
	Deps bool   // it takes Deps after the bus
	File string // the file it is in, relative to the package
	pos  string
	ord  int
}

// decl is where a package-level name is declared.
type decl struct {
	file  string
	pos   string
	isTyp bool
}

// pkgScan is what scaffold knows of the handlers' package.
type pkgScan struct {
	entries []entry
	decls   map[string][]decl
}

// scanPackage parses the Go files of the handlers' package (files maps
// their names to their contents) and returns its registrations and
// declarations. A malformed directive is an error naming its place.
func scanPackage(files map[string][]byte) (*pkgScan, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	fset := token.NewFileSet()
	s := &pkgScan{decls: map[string][]decl{}}
	var problems []string
	seen := map[string]string{}
	for _, name := range names {
		if path.Ext(name) != ".go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, files[name], parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		onFunc := map[*ast.Comment]*ast.FuncDecl{}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					s.add(d.Name.Name, decl{file: name, pos: fset.Position(d.Name.Pos()).String()})
				}
				if d.Doc != nil {
					for _, c := range d.Doc.List {
						onFunc[c] = d
					}
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						s.add(spec.Name.Name, decl{file: name, pos: fset.Position(spec.Pos()).String(), isTyp: true})
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							s.add(n.Name, decl{file: name, pos: fset.Position(n.Pos()).String()})
						}
					}
				}
			}
		}
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if !strings.HasPrefix(c.Text, directivePrefix) {
					continue
				}
				pos := fset.Position(c.Pos()).String()
				e, err := parseDirective(c.Text, onFunc[c])
				if err != nil {
					problems = append(problems, pos+": "+err.Error())
					continue
				}
				if strings.HasSuffix(name, "_test.go") {
					problems = append(problems, pos+": a registration directive in a test file")
					continue
				}
				key := e.Kind + " " + e.Type
				if prev, dup := seen[key]; dup {
					problems = append(problems, fmt.Sprintf("%s: %s is registered again (first at %s)", pos, key, prev))
					continue
				}
				seen[key] = pos
				e.File, e.pos = name, pos
				s.entries = append(s.entries, e)
			}
		}
	}
	for _, e := range s.entries {
		if !s.declaresType(e.Type) {
			problems = append(problems, fmt.Sprintf("%s: %s %s: the package declares no type %s", e.pos, e.Kind, e.Type, e.Type))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("bad //scaffold: directives:\n\t%s", strings.Join(problems, "\n\t"))
	}
	sort.SliceStable(s.entries, func(i, j int) bool {
		a, b := s.entries[i], s.entries[j]
		if a.ord != b.ord {
			return a.ord < b.ord
		}
		return a.Type < b.Type
	})
	return s, nil
}

func (s *pkgScan) add(name string, d decl) {
	if name == "_" || name == "init" {
		return
	}
	s.decls[name] = append(s.decls[name], d)
}

func (s *pkgScan) declaresType(name string) bool {
	for _, d := range s.decls[name] {
		if d.isTyp && !strings.HasSuffix(d.file, "_test.go") {
			return true
		}
	}
	return false
}

// declaredTypes returns those of names that the package declares as types.
func (s *pkgScan) declaredTypes(names []string) []string {
	var out []string
	for _, n := range names {
		if s.declaresType(n) {
			out = append(out, n)
		}
	}
	return out
}

// entry returns the registration of type name, if there is one.
func (s *pkgScan) entry(name string) (entry, bool) {
	for _, e := range s.entries {
		if e.Type == name {
			return e, true
		}
	}
	return entry{}, false
}

// parseDirective checks one "//scaffold:<kind> <Type>" comment and the
// function it documents.
func parseDirective(text string, fn *ast.FuncDecl) (entry, error) {
	fields := strings.Fields(strings.TrimPrefix(text, directivePrefix))
	if len(fields) != 2 {
		return entry{}, fmt.Errorf("directive %q: want //scaffold:<kind> <Type>", text)
	}
	k, err := kindNamed(fields[0])
	if err != nil {
		return entry{}, fmt.Errorf("directive %q: %w", text, err)
	}
	if fn == nil {
		return entry{}, fmt.Errorf("directive %q is not in the doc comment of a function", text)
	}
	if fn.Recv != nil || fn.Type.TypeParams != nil || fn.Type.Results != nil || !takesBus(fn.Type.Params, k.deps) {
		want := "bus *cqrs.Bus"
		if k.deps {
			want += ", deps Deps"
		}
		return entry{}, fmt.Errorf("directive %q: %s must be func %s(%s)", text, fn.Name.Name, fn.Name.Name, want)
	}
	return entry{Kind: k.name, Type: fields[1], Func: fn.Name.Name, Deps: k.deps, ord: k.order}, nil
}

// takesBus reports whether params is one parameter of type *cqrs.Bus, or
// with deps, that and one of type Deps.
func takesBus(params *ast.FieldList, deps bool) bool {
	want := 1
	if deps {
		want = 2
	}
	if params == nil || len(params.List) != want || len(params.List[0].Names) > 1 {
		return false
	}
	if deps {
		last := params.List[1]
		if id, ok := last.Type.(*ast.Ident); !ok || id.Name != "Deps" || len(last.Names) > 1 {
			return false
		}
	}
	star, ok := params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "cqrs" && sel.Sel.Name == "Bus"
}
