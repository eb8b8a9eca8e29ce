package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
)

// service is a service made by scaffold new, found on disk.
type service struct {
	root    string // absolute directory of its go.mod
	module  string
	pkg     string // the handlers' package name, also its directory
	pkgDir  string // absolute
	pkgSrcs map[string][]byte
}

// errNotService says a directory is not inside a service made by
// scaffold new.
var errNotService = errors.New("not inside a service made by scaffold new")

// findService finds the service that dir is in: the nearest directory
// upwards with a go.mod, which must have an internal/<package>/register_gen.go
// written by scaffold.
func findService(dir string) (*service, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for d := abs; ; d = filepath.Dir(d) {
		modBytes, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			return loadService(d, modBytes)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if filepath.Dir(d) == d {
			return nil, fmt.Errorf("%s is %w: no go.mod in it or above it (run scaffold new first, or --dir to point at the service)", abs, errNotService)
		}
	}
}

func loadService(root string, modBytes []byte) (*service, error) {
	mod, err := modfile.ParseLax(filepath.Join(root, "go.mod"), modBytes, nil)
	if err != nil {
		return nil, err
	}
	if mod.Module == nil {
		return nil, fmt.Errorf("%s/go.mod has no module line", root)
	}
	internal := filepath.Join(root, "internal")
	entries, err := os.ReadDir(internal)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var found []*service
	for _, e := range entries {
		if info, err := os.Stat(filepath.Join(internal, e.Name())); err != nil || !info.IsDir() {
			continue // a link to a directory counts: writing through it is refused later
		}
		gen, err := os.ReadFile(filepath.Join(internal, e.Name(), "register_gen.go"))
		if err != nil || !isGenerated(gen) {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), "register_gen.go", gen, parser.PackageClauseOnly)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(internal, e.Name(), "register_gen.go"), err)
		}
		found = append(found, &service{root: root, module: mod.Module.Mod.Path, pkg: f.Name.Name, pkgDir: filepath.Join(internal, e.Name())})
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s (module %s) is %w: no internal/<package>/register_gen.go that begins %q", root, mod.Module.Mod.Path, errNotService, generatedHeader)
	case 1:
	default:
		var dirs []string
		for _, s := range found {
			dirs = append(dirs, filepath.Base(s.pkgDir))
		}
		return nil, fmt.Errorf("%s has several scaffold packages (%s): scaffold handles one per service", root, strings.Join(dirs, ", "))
	}
	s := found[0]
	if filepath.Base(s.pkgDir) != s.pkg {
		return nil, fmt.Errorf("%s holds package %s: scaffold expects the directory to be named after its package", s.pkgDir, s.pkg)
	}
	s.pkgSrcs = map[string][]byte{}
	files, err := os.ReadDir(s.pkgDir)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.IsDir() || !strings.HasSuffix(f.Name(), ".go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.pkgDir, f.Name()))
		if err != nil {
			return nil, err
		}
		s.pkgSrcs[f.Name()] = b
	}
	return s, nil
}

// overlay returns the package's files as they will be after files are
// written (the files scaffold would skip stay as they are).
func (s *service) overlay(files []file, force bool) map[string][]byte {
	out := make(map[string][]byte, len(s.pkgSrcs)+len(files))
	for name, b := range s.pkgSrcs {
		out[name] = b
	}
	for _, f := range files {
		dir, name := filepath.Split(filepath.FromSlash(f.path))
		if filepath.ToSlash(filepath.Clean(dir)) != pkgPath(s.pkg) {
			continue
		}
		if old, exists := out[name]; exists && !force && !bytes.Equal(old, f.data) && !(f.generated && isGenerated(old)) {
			continue
		}
		out[name] = f.data
	}
	return out
}
