package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdd_SecondRunChangesNothing: the same add twice leaves the tree
// byte-identical and says every file is unchanged.
func TestAdd_SecondRunChangesNothing(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			root := writeService(t)
			if code, _, errOut := scaffold(t, "add", k.name, "Thing", "--dir", root); code != 0 {
				t.Fatal(errOut)
			}
			before := treeHash(t, root)
			code, out, errOut := scaffold(t, "add", k.name, "Thing", "--dir", root)
			if code != 0 {
				t.Fatal(errOut)
			}
			if treeHash(t, root) != before {
				t.Error("the second add changed the tree")
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasPrefix(line, "next:") {
					break
				}
				if !strings.HasPrefix(line, "unchanged ") {
					t.Errorf("second run: %q, want unchanged", line)
				}
			}
		})
	}
}

// TestAdd_DryRunWritesNothing: --dry-run says what would be written and
// leaves the tree as it was.
func TestAdd_DryRunWritesNothing(t *testing.T) {
	root := writeService(t)
	before := treeHash(t, root)
	code, out, errOut := scaffold(t, "add", "command", "Refund", "--dir", root, "--dry-run")
	if code != 0 {
		t.Fatal(errOut)
	}
	if treeHash(t, root) != before {
		t.Error("--dry-run changed the tree")
	}
	for _, want := range []string{"would be created internal/orders/refund_command.go (", "would be updated internal/orders/register_gen.go (", "dry run: nothing written (3 file(s) would be written)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestAdd_UserFilesAreSkippedUnlessForced: a piece's file the user edited
// is skipped with a message, the registration is still current, and
// --force overwrites it.
func TestAdd_UserFilesAreSkippedUnlessForced(t *testing.T) {
	root := writeService(t)
	if code, _, errOut := scaffold(t, "add", "event", "Refunded", "--dir", root); code != 0 {
		t.Fatal(errOut)
	}
	path := filepath.Join(root, "internal", "orders", "refunded_event.go")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "// TODO: react to the event", "// refunds are mailed", 1)
	write(t, path, edited)

	code, out, errOut := scaffold(t, "add", "event", "Refunded", "--dir", root)
	if code != 0 {
		t.Fatal(errOut)
	}
	if !strings.Contains(out, "skipped     internal/orders/refunded_event.go (exists and differs: --force to overwrite)") || !strings.Contains(out, "1 file(s) skipped") {
		t.Errorf("output:\n%s", out)
	}
	if got, _ := os.ReadFile(path); string(got) != edited {
		t.Error("the user's edit was lost")
	}

	code, out, errOut = scaffold(t, "add", "event", "Refunded", "--dir", root, "--force")
	if code != 0 {
		t.Fatal(errOut)
	}
	if !strings.Contains(out, "overwritten internal/orders/refunded_event.go") {
		t.Errorf("output:\n%s", out)
	}
	if got, _ := os.ReadFile(path); string(got) != string(b) {
		t.Error("--force did not restore the template's file")
	}
}

// TestAdd_EditsElsewhereSurvive: adding pieces rewrites only the new
// piece's files and register_gen.go.
func TestAdd_EditsElsewhereSurvive(t *testing.T) {
	root := writeService(t)
	cmd := filepath.Join(root, "internal", "orders", "place_order_command.go")
	b, err := os.ReadFile(cmd)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "ID string `json:\"id\"` // TODO: the command's fields", "ID       string `json:\"id\"`\n\tCustomer string `json:\"customer\"`", 1)
	write(t, cmd, edited)
	write(t, filepath.Join(root, "internal", "orders", "stock.go"), "package orders\n\n// Stock is the user's own code.\ntype Stock map[string]int\n")
	for _, args := range [][]string{{"command", "ReserveStock"}, {"event", "StockReserved"}, {"query", "GetStock"}, {"aggregate", "Account"}, {"saga", "Fulfilment"}} {
		if code, _, errOut := scaffold(t, append([]string{"add", "--dir", root}, args...)...); code != 0 {
			t.Fatal(errOut)
		}
	}
	if got, _ := os.ReadFile(cmd); string(got) != edited {
		t.Error("an edit of place_order_command.go was lost")
	}
	gen, err := os.ReadFile(filepath.Join(root, "internal", "orders", "register_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []string{"registerPlaceOrder(bus)", "registerReserveStock(bus)", "registerOrderPlaced(bus)", "registerStockReserved(bus)", "registerGetStock(bus)", "registerAccount(bus, deps)", "registerFulfilment(bus, deps)"} {
		if !strings.Contains(string(gen), call) {
			t.Errorf("register_gen.go lacks %s", call)
		}
	}
	if !strings.Contains(string(gen), `var Commands = []string{"CreateAccount", "PlaceOrder", "ReserveStock", "StartFulfilment"}`) {
		t.Errorf("register_gen.go:\n%s", gen)
	}
}

// TestAdd_GeneratedFileWithoutHeaderIsTheUsers: a register_gen.go whose
// header the user removed is not scaffold's any more.
func TestAdd_GeneratedFileWithoutHeaderIsTheUsers(t *testing.T) {
	root := writeService(t)
	if code, _, errOut := scaffold(t, "add", "command", "Refund", "--dir", root); code != 0 {
		t.Fatal(errOut)
	}
	test := filepath.Join(root, "internal", "orders", "register_gen_test.go")
	b, _ := os.ReadFile(test)
	mine := strings.TrimPrefix(string(b), generatedHeader+"\n")
	write(t, test, mine)
	code, out, errOut := scaffold(t, "add", "query", "GetRefund", "--dir", root)
	if code != 0 {
		t.Fatal(errOut)
	}
	if got, _ := os.ReadFile(test); string(got) != mine || !strings.Contains(out, "skipped     internal/orders/register_gen_test.go (it lacks the scaffold header") {
		t.Errorf("output:\n%s", out)
	}
}

// TestNew_SecondRunChangesNothing: scaffold new on the service it made
// writes nothing (everything is unchanged or the user's).
func TestNew_SecondRunChangesNothing(t *testing.T) {
	root := writeService(t)
	before := treeHash(t, root)
	code, out, errOut := scaffold(t, "new", "orders", "--module", "example.com/orders", "--transport", "amqp", "--dir", root, "--millrace", "../..")
	if code != 0 {
		t.Fatal(errOut)
	}
	if treeHash(t, root) != before {
		t.Errorf("the second new changed the tree:\n%s", out)
	}
	if strings.Contains(out, "created") || strings.Contains(out, "tidying") || strings.Contains(out, "skipped") {
		t.Errorf("the second new wrote or skipped:\n%s", out)
	}
	if !strings.Contains(out, "kept        go.mod (exists; go mod tidy keeps it current") {
		t.Errorf("go.mod not kept:\n%s", out)
	}
}

// TestHelp: --help of every command prints its usage and succeeds.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"new", "--help"}, {"add", "--help"}, {"sync", "-h"}} {
		code, out, errOut := scaffold(t, args...)
		if code != 0 || !strings.Contains(out+errOut, "usage:") {
			t.Errorf("%q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if code, _, errOut := scaffold(t); code != 2 || !strings.Contains(errOut, "usage:") {
		t.Errorf("no arguments: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := scaffold(t, "destroy"); code != 2 || !strings.Contains(errOut, `unknown command "destroy"`) {
		t.Errorf("unknown command: exit %d\n%s", code, errOut)
	}
}
