package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/mod/module"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// errUsage marks an error the usage text explains; run exits 2 for it.
var errUsage = errors.New("usage")

const usage = `scaffold makes millrace services and their handlers, offline.

usage:
  scaffold new <name> --module <path> [--transport KIND] [--dir D] [--millrace PATH] [--force] [--dry-run]
  scaffold add <kind> <Name> [--dir D] [--force] [--dry-run]     kinds: %s
  scaffold sync [--dir D] [--dry-run]
  scaffold <command> --help

new creates a service that builds and passes its tests as it is written; add
adds a piece to it and registers it; sync rewrites the registration after
pieces were deleted or renamed. A file that exists is never overwritten
without --force, except scaffold's own *_gen.go files.
`

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, kindList())
		return 2
	}
	var err error
	switch args[0] {
	case "new":
		err = cmdNew(args[1:], stdout, stderr)
	case "add":
		err = cmdAdd(args[1:], stdout, stderr)
	case "sync":
		err = cmdSync(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintf(stdout, usage, kindList())
		return 0
	default:
		fmt.Fprintf(stderr, "scaffold: unknown command %q\n", args[0])
		fmt.Fprintf(stderr, usage, kindList())
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "scaffold:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "scaffold:", err)
		return 1
	}
}

// parse parses flags and positional arguments in any order (scaffold new
// orders --module example.com/orders and scaffold new --module
// example.com/orders orders alike) and checks the number of positional
// arguments.
func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != positional {
		fs.Usage()
		return nil, fmt.Errorf("%w: scaffold %s takes %d argument(s), got %d: %q", errUsage, fs.Name(), positional, len(pos), pos)
	}
	return pos, nil
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func cmdNew(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("new", `scaffold new <name> --module <path> [flags]

Creates the service <name> in --dir (default ./<name>): go.mod (a replace to
the millrace checkout, tidied offline from the module cache), main.go,
wire.go and wire_gen.go, config.yaml, README.md, .gitignore, and package
internal/<name> with the command PlaceOrder and the event OrderPlaced, their handlers
and tests. It builds and its tests pass offline as it is written. Running it
again on the service it made changes nothing; a directory that holds
anything else is refused.`, stderr)
	modPath := fs.String("module", "", "the module path of the service, e.g. example.com/orders (required)")
	transport := fs.String("transport", "memory", "transport.kind in config.yaml: memory, kafka, amqp, postgres or mysql")
	dir := fs.String("dir", "", "the directory to create the service in (default ./<name>)")
	millrace := fs.String("millrace", "", "the millrace checkout to build against (default: the one scaffold was built from)")
	force := fs.Bool("force", false, "overwrite files that exist and differ")
	dryRun := fs.Bool("dry-run", false, "write nothing; print what would be written")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	pkg, err := validateServiceName(name)
	if err != nil {
		return err
	}
	if *modPath == "" {
		return fmt.Errorf("%w: --module is required (the service's module path, e.g. example.com/%s)", errUsage, name)
	}
	if err := module.CheckImportPath(*modPath); err != nil {
		return fmt.Errorf("--module %q is not a valid module path: %v", *modPath, err)
	}
	if !knownTransport(*transport) {
		return fmt.Errorf("--transport %q: unknown transport; want one of %s", *transport, transportList())
	}
	target := *dir
	if target == "" {
		target = name
	}
	root, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	co, err := findMillrace(*millrace)
	if err != nil {
		return err
	}
	if err := checkTarget(root, *modPath); err != nil {
		return err
	}
	files, err := renderNew(newSpec{
		Service: name, Module: *modPath, Package: pkg, Transport: *transport,
		Millrace: co.dir, GoVersion: co.goVersion, GoSum: co.goSum,
	})
	if err != nil {
		return err
	}
	res, err := writeFiles(root, files, writeOptions{force: *force, dryRun: *dryRun}, stdout)
	if err != nil {
		return err
	}
	if !*dryRun && res.written > 0 && wrote(root, files, "go.mod", "go.sum") {
		fmt.Fprintln(stdout, "tidying    go.mod, go.sum (go mod tidy, offline)")
		if err := tidy(root); err != nil {
			return err
		}
	}
	next(stdout, res, *dryRun, "cd "+shellQuote(relOrAbs(root)), "go test ./...", "go run .", "go run . send "+firstCommand+` '{"id":"o-1"}'`)
	return nil
}

// wrote reports whether any of names (paths relative to root) is among
// files and now holds what files say (it was not skipped).
func wrote(root string, files []file, names ...string) bool {
	for _, f := range files {
		for _, n := range names {
			if f.path != n {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(root, n)); err == nil && string(b) == string(f.data) {
				return true
			}
		}
	}
	return false
}

// checkTarget refuses a directory for scaffold new that holds anything
// but the service of module modPath that scaffold made.
func checkTarget(root, modPath string) error {
	names, err := dirEntries(root)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	svc, err := findService(root)
	if err != nil || svc.root != root {
		return fmt.Errorf("directory %s is not empty (%s) and is not a service scaffold made: choose a new or empty directory with --dir", root, describe(names))
	}
	if svc.module != modPath {
		return fmt.Errorf("directory %s holds the service of module %s, not %s", root, svc.module, modPath)
	}
	return nil
}

func cmdAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("add", fmt.Sprintf(`scaffold add <kind> <Name> [flags]     kinds: %s

Adds a piece to the service in --dir (or the one the current directory is
in): its message types, its handler with TODOs where the logic goes, and its
test, in internal/<pkg>/<name>_<kind>.go and _test.go, and registers it by rewriting
internal/<pkg>/register_gen.go. The service builds and its tests pass afterwards.
Running it again changes nothing.

kinds:
%s`, kindList(), kindHelp()), stderr)
	dir := fs.String("dir", ".", "the service's directory (or any directory in it)")
	force := fs.Bool("force", false, "overwrite the piece's files if they exist and differ")
	dryRun := fs.Bool("dry-run", false, "write nothing; print what would be written")
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	k, err := kindNamed(pos[0])
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	name := pos[1]
	if err := validateTypeName(k.name, name); err != nil {
		return err
	}
	svc, err := findService(*dir)
	if err != nil {
		return err
	}
	piece, err := renderPiece(k, svc.pkg, name, nil)
	if err != nil {
		return err
	}
	if err := checkCollisions(svc, k, name, piece, *force); err != nil {
		return err
	}
	gen, err := renderGenerated(svc.pkg, svc.overlay(piece, *force))
	if err != nil {
		return err
	}
	res, err := writeFiles(svc.root, append(piece, gen...), writeOptions{force: *force, dryRun: *dryRun}, stdout)
	if err != nil {
		return err
	}
	next(stdout, res, *dryRun, "go test ./...")
	return nil
}

// checkCollisions fails when the names a new piece declares are declared
// elsewhere in the package. Declarations in the piece's own files are no
// collision when those files register this very piece (the command ran
// before) or are to be overwritten (--force).
func checkCollisions(svc *service, k kind, name string, piece []file, force bool) error {
	scan, err := scanPackage(svc.pkgSrcs)
	if err != nil {
		return err
	}
	own := map[string]bool{}
	rendered := map[string][]byte{}
	for _, f := range piece {
		own[filepath.Base(f.path)] = true
		rendered[filepath.Base(f.path)] = f.data
	}
	// What the piece declares is what its rendered files declare.
	declares, err := scanPackage(rendered)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(declares.decls))
	for n := range declares.decls {
		names = append(names, n)
	}
	sort.Strings(names)
	if e, ok := scan.entry(name); ok && (e.Kind != k.name || !own[e.File]) {
		return fmt.Errorf("%s is already registered as %s %s in %s/%s", name, e.Kind, e.Type, pkgPath(svc.pkg), e.File)
	}
	ours := false
	if e, ok := scan.entry(name); ok && e.Kind == k.name && own[e.File] {
		ours = true
	}
	var problems []string
	for _, n := range names {
		for _, d := range scan.decls[n] {
			if own[d.file] && (ours || force) {
				continue
			}
			problems = append(problems, fmt.Sprintf("%s is already declared at %s/%s", n, pkgPath(svc.pkg), d.pos))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s %s collides with what package %s has: %s", k.name, name, svc.pkg, strings.Join(problems, "; "))
	}
	return nil
}

func cmdSync(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sync", `scaffold sync [flags]

Rewrites internal/<pkg>/register_gen.go and register_gen_test.go of the service in
--dir from the //scaffold: directives its package holds: run it after
deleting or renaming a piece by hand.`, stderr)
	dir := fs.String("dir", ".", "the service's directory (or any directory in it)")
	dryRun := fs.Bool("dry-run", false, "write nothing; print what would be written")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	svc, err := findService(*dir)
	if err != nil {
		return err
	}
	gen, err := renderGenerated(svc.pkg, svc.pkgSrcs)
	if err != nil {
		return err
	}
	res, err := writeFiles(svc.root, gen, writeOptions{dryRun: *dryRun}, stdout)
	if err != nil {
		return err
	}
	next(stdout, res, *dryRun, "go test ./...")
	return nil
}

// next prints the commands to run after a scaffold command.
func next(out io.Writer, res writeResult, dryRun bool, commands ...string) {
	if dryRun {
		fmt.Fprintf(out, "dry run: nothing written (%d file(s) would be written)\n", res.written)
		return
	}
	if res.skipped > 0 {
		fmt.Fprintf(out, "%d file(s) skipped: they exist and are yours; --force overwrites them\n", res.skipped)
	}
	fmt.Fprintln(out, "next:")
	for _, c := range commands {
		fmt.Fprintln(out, "  "+c)
	}
}

func kindHelp() string {
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-10s %s\n", k.name, k.summary)
	}
	return strings.TrimRight(b.String(), "\n")
}

func knownTransport(kind string) bool {
	for _, t := range transportKinds {
		if t.Kind == kind {
			return true
		}
	}
	return false
}

func transportList() string {
	names := make([]string, len(transportKinds))
	for i, t := range transportKinds {
		names[i] = t.Kind
	}
	return strings.Join(names, ", ")
}

// relOrAbs returns dir relative to the working directory when it is below
// it, else dir.
func relOrAbs(dir string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, dir); err == nil && filepath.IsLocal(rel) {
			return rel
		}
	}
	return dir
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
