package framework

import (
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/millrace/millrace/transports"
)

// String returns the effective configuration as YAML with secrets redacted:
// values tagged `millrace:"secret"` become xxxxx and connection strings tagged
// `millrace:"dsn"` lose their passwords. Only the chosen transport's section
// is shown. It is safe to log or print.
func (c *Config) String() string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.redacted()); err != nil { // cannot happen: the tree holds only strings and maps
		return "<config: " + err.Error() + ">"
	}
	_ = enc.Close()
	return b.String()
}

// LogValue makes slog log the redacted configuration as one group.
func (c *Config) LogValue() slog.Value {
	var attrs []slog.Attr
	flatten("", c.redacted(), func(key, value string) {
		attrs = append(attrs, slog.String(key, value))
	})
	return slog.GroupValue(attrs...)
}

// redacted renders c as nested ordered YAML nodes with secrets masked.
func (c *Config) redacted() *yaml.Node {
	shown := *c
	shown.Transport.Sections = map[string]any{}
	if s, ok := c.Transport.Sections[c.Transport.Kind]; ok {
		shown.Transport.Sections[c.Transport.Kind] = s
	}
	return render(reflect.ValueOf(&shown).Elem())
}

func render(v reflect.Value) *yaml.Node {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, kf := range keyFields(v) {
		m.Content = append(m.Content, scalar(kf.name), renderValue(kf.value, kf.tag))
	}
	return m
}

func renderValue(v reflect.Value, tag string) *yaml.Node {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return scalar("")
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		return scalar(formatDuration(time.Duration(v.Int())))
	case v.Kind() == reflect.Struct:
		return render(v)
	case v.Kind() == reflect.Slice:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := 0; i < v.Len(); i++ {
			seq.Content = append(seq.Content, renderValue(v.Index(i), tag))
		}
		return seq
	default:
		return redactScalar(v, tag)
	}
}

func redactScalar(v reflect.Value, tag string) *yaml.Node {
	var s string
	switch v.Kind() {
	case reflect.String:
		s = v.String()
	case reflect.Bool:
		s = strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s = strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s = strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		s = strconv.FormatFloat(v.Float(), 'g', -1, 64)
	default:
		s = v.Type().String()
	}
	switch {
	case tag == "secret" && s != "":
		s = transports.Redacted
	case tag == "dsn":
		s = transports.RedactDSN(s)
	}
	return scalar(s)
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: s}
}

// flatten calls emit for every scalar below n with its dotted key.
func flatten(path string, n *yaml.Node, emit func(key, value string)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			flatten(join(path, n.Content[i].Value), n.Content[i+1], emit)
		}
	case yaml.SequenceNode:
		vals := make([]string, len(n.Content))
		for i, c := range n.Content {
			vals[i] = c.Value
		}
		emit(path, strings.Join(vals, ","))
	default:
		emit(path, n.Value)
	}
}

// formatDuration is time.Duration.String without zero tails: 24h, 1m, 1m30s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
