package middleware

import (
	"fmt"
	"runtime/debug"

	"github.com/ThreeDotsLabs/watermill/message"
)

// PanicError is a handler panic turned into an error.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

// Error gives the panic value; Stack has the stack trace.
func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Recoverer turns a panic in the handler into a *PanicError carrying the
// stack, so that the panic is then treated like any other failure: retried,
// and in the end poisoned. It sits inside the retry middleware for that
// reason (Watermill's Recoverer is usually installed outermost, where a
// panic bypasses retries).
func Recoverer(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (produced []*message.Message, err error) {
		defer func() {
			if r := recover(); r != nil {
				produced, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
			}
		}()
		return h(msg)
	}
}
