package middleware

import (
	"strconv"

	"github.com/millrace/millrace"
)

// configErr is one bad value of a middleware config, keyed relative to the
// middleware's section; the framework prefixes the section's path.
func configErr(key, value, problem string) error {
	return &millrace.ConfigError{Key: key, Value: value, Problem: problem}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
