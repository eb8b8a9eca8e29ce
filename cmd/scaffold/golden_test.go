package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/millrace/millrace/framework"
)

// TestNew_Golden pins every file scaffold new renders (go.sum is
// millrace's own, copied).
func TestNew_Golden(t *testing.T) {
	files, err := renderNew(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.path] {
			t.Errorf("%s rendered twice", f.path)
		}
		seen[f.path] = true
		if f.path == "go.sum" {
			if string(f.data) != string(testSpec().GoSum) {
				t.Errorf("go.sum is not millrace's go.sum")
			}
			continue
		}
		golden(t, "new/"+f.path, f.data)
	}
	if len(files) != 15 {
		t.Errorf("%d files, want 15", len(files))
	}
}

// TestAdd_Golden pins what each scaffold add writes, and what it says.
func TestAdd_Golden(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			root := writeService(t)
			name := map[string]string{"command": "ReserveStock", "event": "StockReserved", "query": "GetStock", "aggregate": "Account", "saga": "Fulfilment"}[k.name]
			code, out, errOut := scaffold(t, "add", k.name, name, "--dir", root)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "add_"+k.name+"/stdout", []byte(out))
			code1, test1 := k.files(name)
			for _, p := range []string{code1, test1, "register_gen.go"} {
				b, err := os.ReadFile(filepath.Join(root, "internal", "orders", p))
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "add_"+k.name+"/internal/orders/"+p, b)
			}
		})
	}
}

// TestSync_Golden: sync after a piece was deleted by hand drops its
// registration.
func TestSync_Golden(t *testing.T) {
	root := writeService(t)
	for _, f := range []string{"order_placed_event.go", "order_placed_event_test.go"} {
		if err := os.Remove(filepath.Join(root, "internal", "orders", f)); err != nil {
			t.Fatal(err)
		}
	}
	// The command's handler publishes the event: the user edits that too.
	cmd := filepath.Join(root, "internal", "orders", "place_order_command.go")
	b, err := os.ReadFile(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cmd, []byte(strings.Replace(string(b), "return cqrs.Publish(ctx, bus, OrderPlaced{ID: c.ID})", "return nil", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := scaffold(t, "sync", "--dir", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "sync/stdout", []byte(out))
	gen, err := os.ReadFile(filepath.Join(root, "internal", "orders", "register_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sync/internal/orders/register_gen.go", gen)
}

// TestNew_ConfigOfEveryTransportLoads: config.yaml as rendered for each
// transport loads with millrace's own loader and names that transport.
func TestNew_ConfigOfEveryTransportLoads(t *testing.T) {
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range transportKinds {
		t.Run(tr.Kind, func(t *testing.T) {
			spec := testSpec()
			spec.Transport = tr.Kind
			files, err := renderNew(spec)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if f.path != "config.yaml" {
					continue
				}
				cfg, err := framework.Parse(f.data, nil, reg)
				if err != nil {
					t.Fatalf("config.yaml does not load: %v\n%s", err, f.data)
				}
				if cfg.Transport.Kind != tr.Kind || cfg.Service.Name != "orders" || cfg.Observability.Addr == "" {
					t.Errorf("kind %q, service %q, observability.addr %q", cfg.Transport.Kind, cfg.Service.Name, cfg.Observability.Addr)
				}
				for _, other := range transportKinds {
					if other.Kind != tr.Kind && strings.Contains(string(f.data), "\n  "+other.Kind+":") {
						t.Errorf("section %s is not commented out:\n%s", other.Kind, f.data)
					}
				}
			}
		})
	}
}
