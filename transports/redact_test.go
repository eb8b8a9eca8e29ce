package transports_test

import (
	"testing"

	"github.com/millrace/millrace/transports"
)

func TestRedactDSN(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"amqp url", "amqp://guest:s3cret@localhost:5672/", "amqp://guest:xxxxx@localhost:5672/"},
		{"url without password", "amqp://guest@localhost:5672/", "amqp://guest@localhost:5672/"},
		{"postgres url with password param", "postgres://u@h/db?password=s3cret&sslmode=disable", "postgres://u@h/db?password=xxxxx&sslmode=disable"},
		{"libpq key value", "host=localhost user=u password=s3cret dbname=test", "host=localhost user=u password=xxxxx dbname=test"},
		{"libpq quoted", "user=u password='s3 cret' host=h", "user=u password=xxxxx host=h"},
		{"mysql", "root:s3cret@tcp(127.0.0.1:3306)/test?parseTime=true", "root:xxxxx@tcp(127.0.0.1:3306)/test?parseTime=true"},
		{"mysql without password", "root@tcp(127.0.0.1:3306)/test", "root@tcp(127.0.0.1:3306)/test"},
		{"plain host list", "localhost:9092,localhost:9093", "localhost:9092,localhost:9093"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transports.RedactDSN(tt.in); got != tt.want {
				t.Errorf("RedactDSN(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
