package sql

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestRetryable_OnlyDeadlocksAndSerializationFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"mysql deadlock", &mysql.MySQLError{Number: 1213}, true},
		{"wrapped mysql deadlock", fmt.Errorf("x: %w", &mysql.MySQLError{Number: 1213}), true},
		{"mysql lock wait timeout", &mysql.MySQLError{Number: 1205}, false},
		{"postgres deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"postgres serialization failure", &pgconn.PgError{Code: "40001"}, true},
		{"postgres unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"other", errors.New("connection refused"), false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("%s: retryable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMicros_RoundsUp(t *testing.T) {
	for d, want := range map[int64]int64{1: 1, 999: 1, 1000: 1, 1001: 2, 100_000_000: 100_000} {
		if got := micros(time.Duration(d)); got != want {
			t.Errorf("micros(%dns) = %d, want %d", d, got, want)
		}
	}
}
