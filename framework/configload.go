package framework

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// EnvPrefix starts every environment variable that overrides a config key:
// the key's dotted path upper-cased with dots as underscores, so
// transport.kind is MILLRACE_TRANSPORT_KIND and
// transport.memory.redelivery_delay is MILLRACE_TRANSPORT_MEMORY_REDELIVERY_DELAY.
const EnvPrefix = "MILLRACE_"

// EnvConfigPath names the environment variable that gives the config file's
// path when no path is passed explicitly. It is the one MILLRACE_ variable
// that is not a config key.
const EnvConfigPath = "MILLRACE_CONFIG"

// Load reads the YAML config file at path, applies overrides from env (in
// os.Environ form, "KEY=value"), and validates the result.
//
// An empty path means no file: every key keeps its default unless env sets
// it. A path that does not exist is an error (it was asked for). The file is
// decoded strictly: an unknown key, a value of the wrong type or a bad value
// is an error that names the key (as a dotted path), the value and what is
// allowed; all problems are reported at once. A MILLRACE_ variable that
// matches no key is an error too, so a misspelt override cannot go unnoticed.
//
// reg supplies the transport kinds: their names are the allowed values of
// transport.kind and their config structs the sections under transport:.
func Load(path string, env []string, reg *transports.Registry) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("config file %s does not exist", path)
			}
			return nil, fmt.Errorf("read config file: %w", err)
		}
	}
	cfg, err := Parse(data, env, reg)
	if err != nil && path != "" {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, err
}

// Parse is Load for YAML already in memory. Empty data means defaults.
func Parse(data []byte, env []string, reg *transports.Registry) (*Config, error) {
	cfg := DefaultConfig(reg)
	d := &decoder{}
	root := reflect.ValueOf(cfg).Elem()

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		// Empty file: defaults.
	case err != nil:
		return nil, fmt.Errorf("config is not valid YAML: %w", err)
	default:
		if len(doc.Content) > 0 {
			d.node(doc.Content[0], root, "", false)
		}
	}

	d.env(env, root)
	// Every problem at once: what could not be decoded, and every value
	// that decoded but is not allowed (a key that failed to decode keeps
	// its default, so it is reported once).
	failed := map[string]bool{}
	for _, err := range d.errs {
		var ce *millrace.ConfigError
		if errors.As(err, &ce) {
			failed[ce.Key] = true
		}
	}
	errs := d.errs
	for _, err := range splitErrors(cfg.Validate()) {
		var ce *millrace.ConfigError
		if err != nil && !(errors.As(err, &ce) && failed[ce.Key]) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// decoder walks a YAML node tree alongside a config struct, so every error
// can name the full key path. yaml.v3's own decoder reports line numbers and
// Go types instead ("cannot unmarshal !!str into int"), which an operator
// cannot act on.
type decoder struct {
	errs []error
}

func (d *decoder) fail(key, value, problem string) {
	d.errs = append(d.errs, &millrace.ConfigError{Key: key, Value: value, Problem: problem})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// field is one settable key of a config struct.
type field struct {
	value  reflect.Value
	secret bool
	tag    string // the field's millrace tag
}

// fields lists the keys of struct v by name: see keyFields.
func fields(v reflect.Value) map[string]field {
	out := map[string]field{}
	for _, kf := range keyFields(v) {
		out[kf.name] = kf.field
	}
	return out
}

// keyField is one key of a config struct, in declaration order.
type keyField struct {
	name string
	field
}

// keyFields lists the keys of struct v in declaration order: its
// yaml-tagged fields, the fields of structs embedded inline (yaml:",inline")
// as if they were v's own, and the entries of an inline section map
// (map[string]any of pointers to structs) sorted by name.
func keyFields(v reflect.Value) []keyField {
	var out []keyField
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if opts == "inline" {
			switch sf.Type.Kind() {
			case reflect.Map:
				m := v.Field(i)
				for _, k := range sortedKeys(m.Interface().(map[string]any)) {
					out = append(out, keyField{name: k, field: field{value: m.MapIndex(reflect.ValueOf(k)).Elem()}})
				}
				continue
			case reflect.Struct:
				out = append(out, keyFields(v.Field(i))...)
				continue
			}
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, keyField{name: name, field: field{value: v.Field(i), secret: isSecret(sf), tag: sf.Tag.Get("millrace")}})
	}
	return out
}

func isSecret(sf reflect.StructField) bool {
	tag := sf.Tag.Get("millrace")
	return tag == "secret" || tag == "dsn"
}

// node decodes n into v, which sits at key path.
func (d *decoder) node(n *yaml.Node, v reflect.Value, path string, secret bool) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	switch {
	case v.Kind() == reflect.Struct && v.Type() != reflect.TypeFor[time.Duration]():
		if n.Kind != yaml.MappingNode {
			d.fail(path, "", "must be a mapping of keys to values")
			return
		}
		known := fields(v)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := known[key]
			if !ok {
				d.fail(join(path, key), "", "unknown key; allowed keys here: "+strings.Join(sortedKeys(known), ", "))
				continue
			}
			d.node(n.Content[i+1], f.value, join(path, key), f.secret)
		}
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n.Value, "must be a list, such as [a, b]")
			return
		}
		list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			key := fmt.Sprintf("%s[%d]", path, i)
			if item.Kind != yaml.ScalarNode {
				d.fail(key, "", "must be a single value")
				continue
			}
			if problem := setScalar(list.Index(i), item.Value); problem != "" {
				d.fail(key, item.Value, problem)
			}
		}
		v.Set(list)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, "", "must be a single value, not a list or mapping")
			return
		}
		if problem := setScalar(v, n.Value); problem != "" {
			shown := n.Value
			if secret {
				shown = transports.Redacted
			}
			d.fail(path, shown, problem)
		}
	}
}

// setScalar parses s into v according to v's type. It returns what is
// allowed when s does not fit, "" on success.
func setScalar(v reflect.Value, s string) string {
	if v.Kind() == reflect.Pointer {
		// An optional value, such as a *bool whose nil means "the
		// default": set, it points to the parsed value.
		elem := reflect.New(v.Type().Elem())
		if problem := setScalar(elem.Elem(), s); problem != "" {
			return problem
		}
		v.Set(elem)
		return ""
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		dur, err := time.ParseDuration(s)
		if err != nil {
			return "must be a duration such as 250ms, 30s or 5m"
		}
		v.SetInt(int64(dur))
		return ""
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return "must be true or false"
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return "must be a whole number"
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return "must be a whole number, 0 or greater"
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return "must be a number"
		}
		v.SetFloat(f)
	case reflect.Slice:
		var parts []string
		if s != "" {
			parts = strings.Split(s, ",")
		}
		list := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if problem := setScalar(list.Index(i), strings.TrimSpace(p)); problem != "" {
				return "each comma-separated item " + problem
			}
		}
		v.Set(list)
	default:
		return "unsupported config type " + v.Type().String()
	}
	return ""
}

// leaves lists every settable key below v with its environment variable
// name: MILLRACE_ plus the dotted path upper-cased, dots as underscores.
func leaves(v reflect.Value, path string, out map[string]leaf) {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	for name, f := range fields(v) {
		key := join(path, name)
		fv := f.value
		if fv.Kind() == reflect.Pointer {
			fv = fv.Elem()
		}
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Duration]() {
			leaves(fv, key, out)
			continue
		}
		out[EnvPrefix+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))] = leaf{key: key, field: f}
	}
}

type leaf struct {
	key string
	field
}

// env applies MILLRACE_* overrides from env to v.
func (d *decoder) env(env []string, v reflect.Value) {
	known := map[string]leaf{}
	leaves(v, "", known)
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigPath {
			continue
		}
		l, ok := known[name]
		if !ok {
			d.errs = append(d.errs, fmt.Errorf("environment variable %s matches no config key (keys map to MILLRACE_ plus the key upper-cased, dots as underscores, e.g. MILLRACE_TRANSPORT_KIND)", name))
			continue
		}
		if problem := setScalar(l.value, value); problem != "" {
			shown := value
			if l.secret {
				shown = transports.Redacted
			}
			d.fail(l.key, shown, problem+" (from environment variable "+name+")")
		}
	}
}
