package millrace

import (
	"errors"
	"fmt"
	"strings"
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the message that caused it cannot succeed
// however often it is retried (it is malformed, it fails validation, it refers
// to something that does not exist). Retry middleware does not retry permanent
// errors; the message goes straight to the poison queue with err as the
// reason. Permanent(nil) is nil, and marking twice changes nothing.
//
// The mark survives wrapping with fmt.Errorf("...: %w", err), and errors.Is
// and errors.As see through it to err.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// ConfigError reports one bad configuration value. It names the key as it is
// written in the YAML file (dotted path, for example
// "transport.memory.redelivery_delay"), the value that was given, and what is
// allowed, so the service stops at start with a message an operator can act
// on.
type ConfigError struct {
	// Key is the dotted path of the offending key.
	Key string
	// Value is the value as given, already redacted if the key holds a secret.
	// Empty when the problem is a missing or unknown key rather than a value.
	Value string
	// Problem says what is wrong and what is allowed, for example
	// "must be one of: memory, kafka".
	Problem string
}

// Error formats the error as `config key "a.b": value "x": problem`.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config key ")
	b.WriteString(fmt.Sprintf("%q", e.Key))
	if e.Value != "" {
		b.WriteString(": value ")
		b.WriteString(fmt.Sprintf("%q", e.Value))
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	return b.String()
}

// PrefixConfigKeys returns err with prefix (and a dot) put in front of the Key
// of every ConfigError it holds, directly or joined with errors.Join. Config
// structs validate with keys relative to their own section; the loader that
// knows where the section sits in the file adds the prefix. Errors that are
// not ConfigErrors are returned unchanged.
func PrefixConfigKeys(prefix string, err error) error {
	if err == nil || prefix == "" {
		return err
	}
	if ce, ok := err.(*ConfigError); ok {
		c := *ce
		c.Key = prefix + "." + c.Key
		return &c
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs := joined.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = PrefixConfigKeys(prefix, e)
		}
		return errors.Join(out...)
	}
	return err
}

// JoinConfigErrors returns nil for no errors, the error itself for one, and
// errors.Join of all for several: what a config section's Validate returns
// after collecting one ConfigError per bad key.
func JoinConfigErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	default:
		return errors.Join(errs...)
	}
}
