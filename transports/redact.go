package transports

import (
	"net/url"
	"regexp"
	"strings"
)

// Redacted is what RedactDSN puts where a secret was.
const Redacted = "xxxxx"

var (
	// key=value DSNs (PostgreSQL libpq style): password=secret or password='se cret'.
	kvPassword = regexp.MustCompile(`(?i)\b(password|pass|pwd|secret|token)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&;]+)`)
	// user:password@ DSNs without a scheme (go-sql-driver/mysql style).
	userPassword = regexp.MustCompile(`^([^:@/\s]*):([^@]*)@`)
)

// RedactDSN returns dsn with its password (and any password=, secret= or
// token= parameter) replaced by Redacted, so connection strings can be logged
// and put in errors. It understands URLs (amqp://user:pass@host,
// postgres://...), libpq key=value strings and MySQL's user:pass@tcp(host)/db.
// Anything else is returned unchanged.
func RedactDSN(dsn string) string {
	if dsn == "" {
		return dsn
	}
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), Redacted)
			}
			q := u.Query()
			changed := false
			for k := range q {
				if kvPassword.MatchString(k + "=x") {
					q.Set(k, Redacted)
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
	}
	out := kvPassword.ReplaceAllString(dsn, "${1}="+Redacted)
	if m := userPassword.FindStringSubmatchIndex(out); m != nil && m[5] > m[4] {
		out = out[:m[4]] + Redacted + out[m[5]:]
	}
	return out
}
