package framework

import (
	"encoding/json"
	"reflect"
	"strconv"
)

// Codec turns typed messages into payload bytes and back. The App uses one
// codec for everything it publishes and decodes; JSON is the default.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
	// ContentType is the payload's media type, put in the content_type
	// metadata of every message published.
	ContentType() string
}

// JSON is the default codec: encoding/json. Unknown fields in a payload are
// ignored, so publishers can add fields before consumers know them.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// ContentType returns "application/json".
func (JSON) ContentType() string { return "application/json" }

// TypeNamer is implemented by message types that choose their own type name
// (the message_type metadata). Without it the name is the Go type's name
// without package ("OrderPlaced"), which other services, in any language, can
// match.
type TypeNamer interface {
	MessageType() string
}

// Versioned is implemented by message types that carry a schema version:
// their type name ends in ".v" and the version ("OrderPlaced.v2"), so that
// consumers tell the versions apart and an upcaster can turn one into the
// next. A type without it has an unversioned name.
type Versioned interface {
	MessageVersion() int
}

// TypeName returns the type name that millrace stamps on a message carrying
// v (the message_type metadata): v.MessageType() if v implements
// [TypeNamer], else the name of v's type (through pointers); followed by
// ".v<N>" if v implements [Versioned] with version N.
func TypeName(v any) string {
	name := baseName(v)
	if ver, ok := v.(Versioned); ok && name != "" {
		name += ".v" + strconv.Itoa(ver.MessageVersion())
	}
	return name
}

func baseName(v any) string {
	if n, ok := v.(TypeNamer); ok {
		return n.MessageType()
	}
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return ""
	}
	return t.Name()
}

// TypeNameOf returns the type name (see [TypeName]) of messages of type T.
// Methods on the pointer type count too.
func TypeNameOf[T any]() string {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Pointer {
		// A non-nil value, so that methods with value receivers can run.
		return TypeName(reflect.New(t.Elem()).Interface())
	}
	var zero T
	if !hasNameMethods(any(zero)) && hasNameMethods(any(new(T))) {
		return TypeName(new(T))
	}
	return TypeName(zero)
}

func hasNameMethods(v any) bool {
	_, named := v.(TypeNamer)
	_, versioned := v.(Versioned)
	return named || versioned
}
