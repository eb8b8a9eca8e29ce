package transporttest

import (
	"net"
	"sync"
	"testing"
)

// SilentServer listens on a loopback port, accepts every connection and
// never answers, as a half-dead host or a wrong port behind a proxy does,
// until the test ends. It returns its address ("127.0.0.1:port"). Every
// connection millrace opens must give up on it within its configured
// timeout, with an error that names the config key.
func SilentServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
