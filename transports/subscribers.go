package transports

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// ErrClosed is what every transport's errors wrap when a call fails because
// the transport, or the publisher or subscriber called, is closed. Each
// transport names itself in the error text ("amqp: transport closed"); test
// for the condition with errors.Is(err, transports.ErrClosed) (see
// [errors.Is]).
var ErrClosed = errors.New("transport closed")

// Subscribers is the set of subscribers a transport made, kept so that the
// transport's Close closes each of them once. It is the bookkeeping behind
// the Subscriber and Close methods of a [Transport]: [Subscribers.Add] makes
// and remembers a subscriber unless the transport is closed,
// [Subscribers.CloseAll] closes the set and every subscriber in it, and
// [Subscribers.Closed] tells calls such as Delay and Browse that they must
// fail with the transport's closed error.
//
// S is the subscriber type, compared by identity for [Subscribers.Remove].
// The zero value is an empty, open set; set ErrClosed and Concurrent before
// first use. A Subscribers is safe for concurrent use and must not be
// copied.
type Subscribers[S interface {
	comparable
	Close() error
}] struct {
	// ErrClosed is the error [Subscribers.Add] returns once the set is
	// closed. It should wrap [ErrClosed] and name the transport; nil means
	// [ErrClosed] itself.
	ErrClosed error

	// Concurrent makes [Subscribers.CloseAll] close all subscribers at
	// once instead of one after another. A transport wants it when closing
	// a subscriber can take a while, so that the waits do not add up: an
	// SQL subscriber settles its batches first, which after a nack takes
	// resend_interval.
	Concurrent bool

	mu     sync.Mutex // serialises Add, Remove and CloseAll; guards subs
	closed atomic.Bool
	subs   []S
}

// Add calls open and remembers the subscriber it returns, unless the set is
// closed: then it returns s.ErrClosed without calling open. open runs with
// the set locked, so a [Subscribers.CloseAll] that starts meanwhile waits
// for it and closes its subscriber too; open must not call the set's
// methods. An error of open is returned as it is, and nothing is
// remembered.
func (s *Subscribers[S]) Add(open func() (S, error)) (S, error) {
	var zero S
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		if s.ErrClosed != nil {
			return zero, s.ErrClosed
		}
		return zero, ErrClosed
	}
	sub, err := open()
	if err != nil {
		return zero, err
	}
	s.subs = append(s.subs, sub)
	return sub, nil
}

// Remove forgets sub, for a subscriber closed by its user, so that a set
// whose subscribers come and go does not keep them all until
// [Subscribers.CloseAll]. Removing a subscriber the set does not hold does
// nothing.
func (s *Subscribers[S]) Remove(sub S) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.subs, sub); i >= 0 {
		s.subs = slices.Delete(s.subs, i, i+1)
	}
}

// Closed reports whether [Subscribers.CloseAll] has been called. It takes
// no lock.
func (s *Subscribers[S]) Closed() bool { return s.closed.Load() }

// CloseAll closes the set, so that [Subscribers.Add] fails and
// [Subscribers.Closed] reports true from then on, and then closes every
// subscriber the set holds: one after another in the order they were added
// or, if Concurrent, all at once. It returns their errors joined (see
// [errors.Join]). Only the first call does so and reports first; later
// calls return false and nil at once, without waiting for the first to
// finish, so a transport's Close calls it and then releases its own
// resources only if first.
func (s *Subscribers[S]) CloseAll() (first bool, err error) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return false, nil
	}
	s.closed.Store(true)
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()

	errs := make([]error, len(subs))
	if !s.Concurrent {
		for i, sub := range subs {
			errs[i] = sub.Close()
		}
		return true, errors.Join(errs...)
	}
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Go(func() { errs[i] = sub.Close() })
	}
	wg.Wait()
	return true, errors.Join(errs...)
}
