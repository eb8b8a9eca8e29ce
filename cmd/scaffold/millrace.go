package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/modfile"
)

// millraceModule is the module path of the framework.
const millraceModule = "github.com/millrace/millrace"

// checkout is the millrace source tree a new service builds against.
type checkout struct {
	dir       string
	goVersion string
	goSum     []byte
}

// findMillrace returns the millrace checkout at dir, or, when dir is
// empty, the one this scaffold binary was built from (its source files'
// location, which go build records unless -trimpath).
func findMillrace(dir string) (*checkout, error) {
	how := "--millrace"
	if dir == "" {
		how = "the source of this scaffold binary"
		_, self, _, ok := runtime.Caller(0)
		if !ok || !filepath.IsAbs(self) {
			return nil, fmt.Errorf("cannot tell where the millrace checkout is (scaffold was built with -trimpath?): pass --millrace PATH")
		}
		dir = filepath.Dir(filepath.Dir(filepath.Dir(self)))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	modBytes, err := os.ReadFile(filepath.Join(abs, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("millrace checkout (from %s) %s: %w; pass --millrace PATH", how, abs, err)
	}
	mod, err := modfile.ParseLax("go.mod", modBytes, nil)
	if err != nil {
		return nil, fmt.Errorf("millrace checkout %s: %w", abs, err)
	}
	if mod.Module == nil || mod.Module.Mod.Path != millraceModule {
		return nil, fmt.Errorf("millrace checkout (from %s) %s: its go.mod is not module %s", how, abs, millraceModule)
	}
	if mod.Go == nil {
		return nil, fmt.Errorf("millrace checkout %s: its go.mod has no go line", abs)
	}
	sum, err := os.ReadFile(filepath.Join(abs, "go.sum"))
	if err != nil {
		return nil, fmt.Errorf("millrace checkout %s: %w", abs, err)
	}
	return &checkout{dir: abs, goVersion: mod.Go.Version, goSum: sum}, nil
}

// tidy runs go mod tidy in dir offline, from the module cache only
// (GOPROXY=off), so that go.mod lists exactly what the service needs and
// go.sum (seeded from millrace's) exactly its hashes.
func tidy(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "mod", "tidy")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod tidy (offline, GOPROXY=off) in %s: %v\n%s\nthe module cache lacks a module millrace needs: run go mod download in the millrace checkout, then scaffold again", dir, err, strings.TrimSpace(out.String()))
	}
	return nil
}
