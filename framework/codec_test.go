package framework_test

import (
	"testing"

	"github.com/millrace/millrace/framework"
)

type plainEvent struct{}

type namedEvent struct{}

func (namedEvent) MessageType() string { return "orders.Named" }

type versionedEvent struct{}

func (versionedEvent) MessageVersion() int { return 2 }

type namedVersioned struct{}

func (namedVersioned) MessageType() string { return "orders.Both" }
func (namedVersioned) MessageVersion() int { return 3 }

type pointerNamed struct{}

func (*pointerNamed) MessageType() string { return "orders.ByPointer" }

func TestTypeName_NamesAndVersions(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"plain", framework.TypeName(plainEvent{}), "plainEvent"},
		{"plain through a pointer", framework.TypeName(&plainEvent{}), "plainEvent"},
		{"named", framework.TypeName(namedEvent{}), "orders.Named"},
		{"versioned", framework.TypeName(versionedEvent{}), "versionedEvent.v2"},
		{"named and versioned", framework.TypeName(namedVersioned{}), "orders.Both.v3"},
		{"nil", framework.TypeName(nil), ""},
		{"of plain", framework.TypeNameOf[plainEvent](), "plainEvent"},
		{"of versioned", framework.TypeNameOf[versionedEvent](), "versionedEvent.v2"},
		{"of a pointer type with value methods", framework.TypeNameOf[*namedVersioned](), "orders.Both.v3"},
		{"of a type with pointer methods", framework.TypeNameOf[pointerNamed](), "orders.ByPointer"},
		{"of an interface", framework.TypeNameOf[any](), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
