package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// writeOptions say how [writeFiles] treats files that exist.
type writeOptions struct {
	force  bool // overwrite the user's files that differ
	dryRun bool // write nothing; say what would be written
}

// writeResult counts what [writeFiles] did.
type writeResult struct {
	written int // files created, overwritten or updated
	skipped int // user's files left as they are although they differ
}

// writeFiles writes files under root, one line per file to out:
//
//	created      the file did not exist
//	unchanged    it exists with this content
//	skipped      it is the user's and differs (written only with --force)
//	overwritten  it was the user's and differed, and force was given
//	updated      it is scaffold's own (register_gen.go) and changed
//	kept         it is go.mod or go.sum, exists and differs (tidied before)
//
// Every path is checked before anything is written: a path that leaves
// root, also through a symbolic link, is an error and nothing is written.
func writeFiles(root string, files []file, opts writeOptions, out io.Writer) (writeResult, error) {
	var res writeResult
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	type op struct {
		f      file
		abs    string
		action string
	}
	var ops []op
	for _, f := range files {
		abs, err := safePath(root, realRoot, f.path)
		if err != nil {
			return res, err
		}
		action := "created"
		old, err := os.ReadFile(abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return res, err
		case bytes.Equal(old, f.data):
			action = "unchanged"
		case f.generated && isGenerated(old):
			action = "updated"
		case opts.force:
			action = "overwritten"
		case f.tidied:
			action = "kept"
		default:
			action = "skipped"
		}
		ops = append(ops, op{f, abs, action})
	}
	for _, o := range ops {
		line := fmt.Sprintf("%-11s %s", o.action, o.f.path)
		switch o.action {
		case "skipped":
			res.skipped++
			if o.f.generated {
				line += " (it lacks the scaffold header, so it is yours: --force to overwrite)"
			} else {
				line += " (exists and differs: --force to overwrite)"
			}
		case "kept":
			line += " (exists; go mod tidy keeps it current: --force rewrites it)"
		case "unchanged":
		default:
			res.written++
			if opts.dryRun {
				line = fmt.Sprintf("%-11s %s (%d bytes)", "would be "+o.action, o.f.path, len(o.f.data))
				break
			}
			if err := writeAtomic(o.abs, o.f.data); err != nil {
				return res, err
			}
		}
		fmt.Fprintln(out, line)
	}
	return res, nil
}

// safePath returns the absolute path of rel under root, or an error when
// it is not a local path or an existing directory on its way is a link
// that leads out of root.
func safePath(root, realRoot, rel string) (string, error) {
	native := filepath.FromSlash(rel)
	if !filepath.IsLocal(native) {
		return "", fmt.Errorf("path %q escapes the target directory %s", rel, root)
	}
	abs := filepath.Join(root, native)
	if realRoot == "" {
		return abs, nil // root does not exist yet: nothing in it can be a link
	}
	// The deepest part of the path that exists must resolve inside root.
	for p := abs; ; p = filepath.Dir(p) {
		real, err := filepath.EvalSymlinks(p)
		if errors.Is(err, fs.ErrNotExist) {
			if p == root {
				return abs, nil
			}
			continue
		}
		if err != nil {
			return "", err
		}
		if r, err := filepath.Rel(realRoot, real); err != nil || !filepath.IsLocal(r) && r != "." {
			return "", fmt.Errorf("path %q escapes the target directory %s: %s leads to %s", rel, root, p, real)
		}
		return abs, nil
	}
}

// writeAtomic writes data to path through a temporary file in its
// directory, so a failure never leaves half a file.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".scaffold-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// dirEntries returns the names in dir, none for a directory that does not
// exist.
func dirEntries(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// describe lists a few names for an error message.
func describe(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}
