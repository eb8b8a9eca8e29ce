package kafka

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// request is a Kafka request frame of API key api: size, key, version,
// correlation id.
func request(api uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint32(b[0:4], 8)
	binary.BigEndian.PutUint16(b[4:6], api)
	binary.BigEndian.PutUint32(b[8:12], 1)
	return b
}

// TestBoundedConn_FirstAnswer: the answer to a connection's first request
// must come within the timeout, and within the timeout and the hold for a
// request a broker may hold (produce, fetch, join group); once the broker
// has answered, the caller's deadlines apply to later requests.
func TestBoundedConn_FirstAnswer(t *testing.T) {
	const timeout = 100 * time.Millisecond
	hold := holds{produce: 300 * time.Millisecond, fetch: 300 * time.Millisecond, join: 300 * time.Millisecond}
	tests := []struct {
		name    string
		api     uint16
		answer  time.Duration // when the server answers the first request; 0: never
		timeout bool          // whether the first read fails with a connectError
		noReply bool          // a produce with acks "none": there is no first answer to read
	}{
		{"metadata answered in time", 3, 10 * time.Millisecond, false, false},
		{"metadata not answered", 3, 0, true, false},
		{"metadata answered late", 3, 2 * timeout, true, false},
		{"find coordinator not answered", 10, 0, true, false},
		{"join group held", 11, 2 * timeout, false, false},
		{"join group not answered", 11, 0, true, false},
		{"fetch held", 1, 2 * timeout, false, false},
		{"fetch held too long", 1, 6 * timeout, true, false},
		{"produce held", 0, 2 * timeout, false, false},
		{"produce with acks none, then a request answered slowly", 0, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			served := make(chan struct{})
			go func() {
				defer close(served)
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 12)
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if tt.answer > 0 {
					time.Sleep(tt.answer)
					_, _ = c.Write([]byte("answer"))
				}
				// A second request is answered after more than the
				// timeout: only the caller's deadline applies now.
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				time.Sleep(2 * timeout)
				_, _ = c.Write([]byte("second"))
				_, _ = io.Copy(io.Discard, c)
			}()

			h := hold
			h.produceUnanswered = tt.noReply
			d := &dialer{timeout: timeout, hold: h}
			c, err := d.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = c.Close()
				<-served
			}()
			// As Sarama does: a write deadline, the request, a read
			// deadline, the answer.
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(request(tt.api)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if !tt.noReply {
				start := time.Now()
				_, err = io.ReadFull(c, make([]byte, 6))
				took := time.Since(start)
				var ce *connectError
				if got := errors.As(err, &ce); got != tt.timeout {
					t.Fatalf("first read after %v: %v; want a connect timeout: %v", took, err, tt.timeout)
				}
				if tt.timeout {
					if ce.phase != phaseAnswer || took > timeout+hold.join+time.Second {
						t.Errorf("timed out after %v in phase %v, want after %v (and the hold) waiting for the answer", took, ce.phase, timeout)
					}
					return
				}
			}
			if _, err := c.Write(request(3)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, 6)); err != nil {
				t.Errorf("second read: %v, want the answer after %v (the caller's deadline is 10s)", err, 2*timeout)
			}
		})
	}
}
