package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNew_RefusesBadInputBeforeWritingAnything: every bad input of
// scaffold new is an error naming what is wrong, and the directory is as
// it was.
func TestNew_RefusesBadInputBeforeWritingAnything(t *testing.T) {
	millrace, err := findMillrace("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		setup func(t *testing.T, dir string) // dir is --dir
		code  int
		want  string
	}{
		{name: "no name", args: []string{"--module", "example.com/x"}, code: 2, want: "takes 1 argument(s), got 0"},
		{name: "two names", args: []string{"a", "b", "--module", "example.com/x"}, code: 2, want: "takes 1 argument(s), got 2"},
		{name: "upper-case name", args: []string{"Orders", "--module", "example.com/x"}, code: 1, want: `service name "Orders": want lower-case letters`},
		{name: "name with a dot", args: []string{"my.orders", "--module", "example.com/x"}, code: 1, want: `service name "my.orders"`},
		{name: "trailing hyphen", args: []string{"orders-", "--module", "example.com/x"}, code: 1, want: `service name "orders-"`},
		{name: "keyword package", args: []string{"go", "--module", "example.com/x"}, code: 1, want: `package name "go" is a Go keyword`},
		{name: "keyword after dropping hyphens", args: []string{"for-", "--module", "example.com/x"}, code: 1, want: `service name "for-"`},
		{name: "package clashing with main.go", args: []string{"cqrs", "--module", "example.com/x"}, code: 1, want: `package name "cqrs" would clash`},
		{name: "package clashing with an import of main.go", args: []string{"saga", "--module", "example.com/x"}, code: 1, want: `package name "saga" would clash`},
		{name: "package clashing with a builtin", args: []string{"len", "--module", "example.com/x"}, code: 1, want: `package name "len" would clash`},
		{name: "no module", args: []string{"orders"}, code: 2, want: "--module is required"},
		{name: "bad module path", args: []string{"orders", "--module", "example.com/a b"}, code: 1, want: `--module "example.com/a b" is not a valid module path`},
		{name: "unknown transport", args: []string{"orders", "--module", "example.com/x", "--transport", "pigeon"}, code: 1, want: `--transport "pigeon": unknown transport; want one of memory, kafka, amqp, postgres, mysql`},
		{name: "unknown flag", args: []string{"orders", "--module", "example.com/x", "--colour"}, code: 2, want: "flag provided but not defined: -colour"},
		{name: "not a millrace checkout", args: []string{"orders", "--module", "example.com/x", "--millrace", "/"}, code: 1, want: "millrace checkout (from --millrace) /"},
		{
			name: "non-empty directory", args: []string{"orders", "--module", "example.com/x"}, code: 1, want: "is not empty (notes.txt) and is not a service scaffold made",
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "notes.txt"), "mine") },
		},
		{
			name: "another module's service", args: []string{"orders", "--module", "example.com/other"}, code: 1, want: "holds the service of module example.com/x, not example.com/other",
			setup: func(t *testing.T, dir string) {
				if code, _, errOut := scaffold(t, "new", "orders", "--module", "example.com/x", "--dir", dir, "--millrace", millrace.dir, "--dry-run"); code != 0 {
					t.Fatal(errOut)
				}
				files, err := renderNew(newSpec{Service: "orders", Module: "example.com/x", Package: "orders", Transport: "memory", Millrace: millrace.dir, GoVersion: "1.26"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := writeFiles(dir, files, writeOptions{}, &strings.Builder{}); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "svc")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			before := treeHash(t, dir)
			code, _, errOut := scaffold(t, append([]string{"new", "--dir", dir}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errOut, tt.code, tt.want)
			}
			if treeHash(t, dir) != before {
				t.Errorf("scaffold new wrote to %s although it failed", dir)
			}
		})
	}
}

// TestAdd_RefusesBadInputBeforeWritingAnything: every bad input of
// scaffold add is an error naming what is wrong, and the service is as it
// was.
func TestAdd_RefusesBadInputBeforeWritingAnything(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		setup func(t *testing.T, root string) string // returns --dir; nil: root
		code  int
		want  string
	}{
		{name: "no name", args: []string{"command"}, code: 2, want: "takes 2 argument(s), got 1"},
		{name: "unknown kind", args: []string{"widget", "Foo"}, code: 2, want: `unknown kind "widget"; scaffold add takes aggregate, command, event, query, saga`},
		{name: "keyword", args: []string{"command", "type"}, code: 1, want: `name "type" is a Go keyword`},
		{name: "not an identifier", args: []string{"command", "Place-Order"}, code: 1, want: `name "Place-Order" is not a Go identifier`},
		{name: "starts with a digit", args: []string{"event", "2Fast"}, code: 1, want: `name "2Fast" is not a Go identifier`},
		{name: "not exported", args: []string{"command", "placeOrder"}, code: 1, want: `name "placeOrder" is not exported (it must start with an upper-case letter, e.g. "PlaceOrder")`},
		{name: "generated name", args: []string{"command", "Register"}, code: 1, want: `name "Register" is declared by the generated register_gen.go`},
		{name: "test name", args: []string{"query", "TestStock"}, code: 1, want: `name "TestStock" starts with Test`},
		{name: "registered as another kind", args: []string{"command", "OrderPlaced"}, code: 1, want: "OrderPlaced is already registered as event OrderPlaced in internal/orders/order_placed_event.go"},
		{
			name: "type declared by the user", args: []string{"command", "Refund"}, code: 1, want: "command Refund collides with what package orders has: Refund is already declared at internal/orders/refund.go:3:6",
			setup: func(t *testing.T, root string) string {
				write(t, filepath.Join(root, "internal", "orders", "refund.go"), "package orders\n\ntype Refund struct{}\n")
				return ""
			},
		},
		{
			name: "query answer declared by the user", args: []string{"query", "GetStock"}, code: 1, want: "GetStockResult is already declared at internal/orders/stock.go:3:6",
			setup: func(t *testing.T, root string) string {
				write(t, filepath.Join(root, "internal", "orders", "stock.go"), "package orders\n\ntype GetStockResult struct{}\n")
				return ""
			},
		},
		{
			name: "piece file written by hand", args: []string{"command", "Refund"}, code: 1, want: "Refund is already declared at internal/orders/refund_command.go:3:6",
			setup: func(t *testing.T, root string) string {
				write(t, filepath.Join(root, "internal", "orders", "refund_command.go"), "package orders\n\ntype Refund struct{}\n")
				return ""
			},
		},
		{
			name: "bad directive", args: []string{"command", "Refund"}, code: 1, want: `directive "//scaffold:command Refund": registerRefund must be func registerRefund(bus *cqrs.Bus)`,
			setup: func(t *testing.T, root string) string {
				write(t, filepath.Join(root, "internal", "orders", "refund.go"), "package orders\n\ntype Refund struct{}\n\n//scaffold:command Refund\nfunc registerRefund() {}\n")
				return ""
			},
		},
		{
			name: "aggregate directive without deps", args: []string{"command", "Refund"}, code: 1, want: `directive "//scaffold:aggregate Ledger": registerLedger must be func registerLedger(bus *cqrs.Bus, deps Deps)`,
			setup: func(t *testing.T, root string) string {
				write(t, filepath.Join(root, "internal", "orders", "ledger.go"), "package orders\n\ntype Ledger struct{}\n\n//scaffold:aggregate Ledger\nfunc registerLedger(bus *cqrs.Bus) {}\n")
				return ""
			},
		},
		{
			name: "directive of an unknown kind", args: []string{"command", "Refund"}, code: 1, want: `directive "//scaffold:widget Refund": unknown kind "widget"`,
			setup: func(t *testing.T, root string) string {
				write(t, filepath.Join(root, "internal", "orders", "refund.go"), "package orders\n\n//scaffold:widget Refund\nfunc registerRefund(bus *cqrs.Bus) {}\n")
				return ""
			},
		},
		{
			name: "outside any module", args: []string{"command", "Refund"}, code: 1, want: "not inside a service made by scaffold new: no go.mod in it or above it",
			setup: func(t *testing.T, root string) string { return t.TempDir() },
		},
		{
			name: "a module scaffold did not make", args: []string{"command", "Refund"}, code: 1, want: "(module example.com/plain) is not inside a service made by scaffold new: no internal/<package>/register_gen.go",
			setup: func(t *testing.T, root string) string {
				dir := t.TempDir()
				write(t, filepath.Join(dir, "go.mod"), "module example.com/plain\n")
				write(t, filepath.Join(dir, "pkg", "register_gen.go"), "package pkg\n") // no header
				return dir
			},
		},
		{
			name: "package directory leading out of the service", args: []string{"command", "Refund"}, code: 1, want: `path "internal/orders/refund_command.go" escapes the target directory`,
			setup: func(t *testing.T, root string) string {
				outside := t.TempDir()
				if err := os.Rename(filepath.Join(root, "internal", "orders"), filepath.Join(outside, "orders")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(outside, "orders"), filepath.Join(root, "internal", "orders")); err != nil {
					t.Fatal(err)
				}
				return ""
			},
		},
		{
			name: "piece file linking out of the service", args: []string{"command", "Refund"}, code: 1, want: `path "internal/orders/refund_command.go" escapes the target directory`,
			setup: func(t *testing.T, root string) string {
				target := filepath.Join(t.TempDir(), "elsewhere.go")
				write(t, target, "package orders\n")
				if err := os.Symlink(target, filepath.Join(root, "internal", "orders", "refund_command.go")); err != nil {
					t.Fatal(err)
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeService(t)
			dir := root
			if tt.setup != nil {
				if d := tt.setup(t, root); d != "" {
					dir = d
				}
			}
			before := treeHash(t, filepath.Dir(root))
			code, _, errOut := scaffold(t, append([]string{"add", "--dir", dir}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errOut, tt.code, tt.want)
			}
			if treeHash(t, filepath.Dir(root)) != before {
				t.Errorf("scaffold add wrote to the service although it failed")
			}
		})
	}
}

// TestSafePath_RefusesPathsOutsideTheRoot: no rendered path can leave the
// target directory.
func TestSafePath_RefusesPathsOutsideTheRoot(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"../x.go", "/etc/passwd", "a/../../x.go", ""} {
		if _, err := safePath(root, root, p); err == nil || !strings.Contains(err.Error(), "escapes the target directory") {
			t.Errorf("safePath(%q) = %v, want an escape error", p, err)
		}
	}
	if _, err := writeFiles(root, []file{{path: "ok.go", data: []byte("x")}, {path: "../evil.go", data: []byte("x")}}, writeOptions{}, &strings.Builder{}); err == nil {
		t.Error("writeFiles wrote a path that escapes")
	}
	if _, err := os.Stat(filepath.Join(root, "ok.go")); err == nil {
		t.Error("writeFiles wrote ok.go before finding the bad path")
	}
}

// TestWords: names become file and handler names.
func TestWords(t *testing.T) {
	for in, want := range map[string]string{
		"PlaceOrder": "place_order", "HTTPServer": "http_server", "OrderV2": "order_v2", "GetURLForID": "get_url_for_id",
		"A": "a", "Place_Order": "place_order", "ÜberFahrt": "über_fahrt", "ServerLinux": "server_linux",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
	if got := kebab("OrderPlaced"); got != "order-placed" {
		t.Errorf("kebab = %q", got)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAdd_RefusesATestNameTheUserHas: the piece's test functions collide
// too.
func TestAdd_RefusesATestNameTheUserHas(t *testing.T) {
	root := writeService(t)
	write(t, filepath.Join(root, "internal", "orders", "mine_test.go"), "package orders\n\nimport \"testing\"\n\nfunc TestRefund_IsHandled(t *testing.T) {}\n")
	code, _, errOut := scaffold(t, "add", "command", "Refund", "--dir", root)
	if code != 1 || !strings.Contains(errOut, "TestRefund_IsHandled is already declared at internal/orders/mine_test.go:5:6") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
