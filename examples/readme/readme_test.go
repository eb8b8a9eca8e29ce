package readme_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/cqrstest"
	"github.com/millrace/millrace/examples/readme"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestREADME_GoSamplesAreThisPackagesCode: every Go sample of README.md
// stands here word for word, so the README never shows code that does not
// compile.
func TestREADME_GoSamplesAreThisPackagesCode(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources.Write(b)
	}
	blocks := goBlock.FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("no Go samples found in README.md")
	}
	for _, b := range blocks {
		if sample := string(b[1]); !strings.Contains(sources.String(), sample) {
			t.Errorf("README sample not found verbatim in examples/readme:\n%s", sample)
		}
	}
}

func TestREADME_ShopSampleWorks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, bus := cqrstest.New(t)
		readme.RegisterShop(bus, func(id string) readme.OrderView { return readme.OrderView{OrderID: id, Status: "placed"} })
		h.Start()
		res, view, err := readme.Shop(context.Background(), bus)
		if err != nil || res.Table != "t-2" || view.Status != "placed" {
			t.Fatalf("Shop = %v, %v, %v", res, view, err)
		}
		if placed := cqrstest.WaitEvents[readme.OrderPlaced](h, bus, "", 1); placed[0].OrderID != "o-1" {
			t.Errorf("placed %v", placed)
		}
		_, err = cqrs.Request[readme.TableReserved](context.Background(), bus, readme.ReserveTable{ID: "3", Guests: 12})
		if err == nil || !strings.Contains(err.Error(), "no table for 12 guests") {
			t.Errorf("request for 12 = %v", err)
		}
	})
}
